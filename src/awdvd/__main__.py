from awdvd.cli import main

raise SystemExit(main())
