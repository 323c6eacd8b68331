from omrgemma.cli import main

main()
