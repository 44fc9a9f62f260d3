from kagexp.cli import main

main()
