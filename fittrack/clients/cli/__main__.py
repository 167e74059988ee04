import sys

from fittrack.clients.cli.main import main

sys.exit(main())
