"""`python -m pbx_textback.esl`: the FreeSWITCH event-socket child (see child.py)."""
import sys

from .child import main

sys.exit(main())
