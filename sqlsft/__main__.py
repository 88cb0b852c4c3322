from sqlsft.cli import main

main()
