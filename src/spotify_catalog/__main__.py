from spotify_catalog.cli import main

main()
