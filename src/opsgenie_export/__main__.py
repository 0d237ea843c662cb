from opsgenie_export.cli import main

main()
