import sys

from bench.service.run import main

if __name__ == "__main__":
    sys.exit(main())
