from idrs.cli import main

main()
