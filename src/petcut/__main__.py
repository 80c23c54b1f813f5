from petcut.cli import main

main()
