"""The HTML of preview pages (str.format templates: literal braces are doubled).

The script colours low-confidence measures in each engraving (the n-th `g.measure` of the
system's SVG), reports script errors and `console.error` calls into the page itself, and sets
`data-rendered` on <body> when it ran through: a headless browser test reads both from the DOM.
"""

_STYLE = """
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1400px; }}
h1 {{ margin-bottom: .2em; }} .meta {{ color: #555; }}
.page-svg {{ width: 100%; height: auto; border: 1px solid #ccc; }}
.box {{ fill: none; stroke-width: 3; }} .box.ok {{ stroke: #1a7f37; }}
.box.low {{ stroke: #d97706; }} .box.bad {{ stroke: #c62828; }}
.page-svg text {{ fill: #c62828; font: bold 16px sans-serif; }}
.system {{ border-top: 1px solid #ddd; padding: .5em 0; }}
.pair {{ display: flex; gap: 1em; align-items: flex-start; flex-wrap: wrap; }}
.crop {{ max-width: 48%; border: 1px solid #ccc; }}
.engraving {{ max-width: 50%; overflow-x: auto; }} .engraving svg {{ max-width: 100%; height: auto; }}
g.measure.low-confidence, g.measure.low-confidence * {{ fill: #d97706; stroke: #d97706; }}
.low {{ color: #b45309; }} .bad {{ color: #c62828; }} .note {{ color: #666; font-style: italic; }}
pre {{ background: #f6f6f6; padding: .5em; overflow-x: auto; }}
#errors:empty {{ display: none; }} #errors {{ color: #c62828; border: 2px solid #c62828; }}
"""

_SCRIPT = """
<script>
(function () {{
  var errors = document.getElementById('errors');
  function report(text) {{ errors.appendChild(document.createTextNode(text + '\\n')); }}
  window.addEventListener('error', function (e) {{ report('error: ' + e.message); }});
  var original = console.error;
  console.error = function () {{
    report('console.error: ' + Array.prototype.join.call(arguments, ' '));
    if (original) original.apply(console, arguments);
  }};
  var marked = 0;
  document.querySelectorAll('section.system').forEach(function (section) {{
    var low = (section.getAttribute('data-low') || '').split(',').filter(Boolean);
    var measures = section.querySelectorAll('.engraving g.measure');
    low.forEach(function (n) {{
      var m = measures[parseInt(n, 10) - 1];
      if (m) {{ m.classList.add('low-confidence'); marked += 1; }}
    }});
  }});
  document.body.setAttribute('data-marked', String(marked));
  document.body.setAttribute('data-rendered', 'ok');
}})();
</script>
"""

PAGE = (
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{title} - omrgemma preview</title>
<style>"""
    + _STYLE
    + """</style></head>
<body data-rendered="no">
<h1>{title}</h1>
<p class="meta">{summary}<br>source: {source}</p>
<pre id="errors"></pre>
<ul class="issues">{notes}</ul>
{body}
"""
    + _SCRIPT
    + """</body></html>
"""
)

INDEX = (
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{title} - omrgemma batch</title>
<style>"""
    + _STYLE
    + """ td, th {{ padding: .2em .8em; text-align: left; }}</style></head>
<body data-rendered="ok">
<h1>{title}</h1>
<pre id="errors"></pre>
<h2>Transcriptions</h2>
<table><tr><th>preview</th><th>pages</th><th>systems</th><th>confidence</th>
<th>low-confidence measures</th><th>problems</th></tr>
{rows}
</table>
<h2>Failed inputs</h2>
<table>{failures}</table>
</body></html>
"""
)
