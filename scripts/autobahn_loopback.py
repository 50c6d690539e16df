# wstest (Python 2.7) with every listener bound to 127.0.0.1: wstest binds its
# listeners to all interfaces. (The embedded web server of the fuzzingserver
# mode is disabled with -u 0 by scripts/autobahn.sh.)
#
#   python2.7 scripts/autobahn_loopback.py WSTEST-ARGS...
import sys
from autobahntestsuite import wstest
from twisted.internet import reactor
_listen_tcp = reactor.listenTCP
def _loopback_listen_tcp(port, factory, backlog=50, interface=""):
    return _listen_tcp(port, factory, backlog, interface or "127.0.0.1")
reactor.listenTCP = _loopback_listen_tcp
sys.argv[0] = "wstest"
sys.exit(wstest.run())
