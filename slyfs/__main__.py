from slyfs.cli import main

raise SystemExit(main())
