"""Small inline **kern fixtures shared by the kern tests.

PIANO and MELODY are the two inputs of /work/shared/docs/machine.md (written by hand for the
environment checks): PIANO has two staves, a chord, beams, a triplet, a tie across a barline, a
grace note and a spine split into two voices; MELODY is a 3/4 melody with a pickup-free first bar,
a slur, sixteenths and a rest.
"""

PIANO = """\
**kern	**kern
*staff2	*staff1
*Ipiano	*Ipiano
*clefF4	*clefG2
*k[f#]	*k[f#]
*G:	*G:
*M4/4	*M4/4
=1-	=1-
2GG 2G	4d 4g 4b
.	8ddL
.	8eeJ
2D	2dd
=2	=2
4G	12ggL
.	12aa
.	12bbJ
4B	4ff#
2d	[2gg
=3	=3
1GG 1G	4gg]
.	8qdd
.	4cc
.	2b
=4	=4
*	*^
2GG	4dd	2b
.	4ee	.
2D	2dd	2a
*	*v	*v
==	==
*-	*-
"""

MELODY = """\
**kern
*clefG2
*k[b-]
*F:
*M3/4
=1-
4f
8gL
8aJ
4b-
=2
4.cc
8b-
4a
=3
(8gL
8fJ)
16eLL
16f
16g
16aJJ
4r
=4
2.f
==
*-
"""

# Written for these tests: every feature that must survive into MusicXML, in three bars:
# a piano brace, a **dynam spine (p, f), a chord, a tie, a triplet, a grace note, a clef, key and
# meter change in bar 2, and a spine split into two voices in bar 3.
FEATURES = """\
!!!COM: omrgemma tests
!!!OTL: Feature check
**kern	**kern	**dynam
*staff2	*staff1	*staff1
*Ipiano	*Ipiano	*Ipiano
*clefF4	*clefG2	*
*k[]	*k[]	*
*M4/4	*M4/4	*
=1-	=1-	=1-
4C	4e 4g	p
4D	[4f	.
2E	4f]	.
.	4g	.
=2	=2	=2
*clefG2	*	*
*k[f#]	*k[f#]	*
*M3/4	*M3/4	*
4g	12aL	f
.	12b	.
.	12ccJ	.
.	8qdd	.
4a	4cc	.
4b	4dd	.
=3	=3	=3
*	*^	*
4c	4ee	2g	.
4d	4dd	.	.
4e	4cc	4f	.
*	*v	*v	*
==	==	==
*-	*-	*-
"""
