from mame.cli import main

raise SystemExit(main())
