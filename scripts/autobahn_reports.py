# Ask the wstest fuzzingserver on 127.0.0.1:PORT to write its reports (as the
# testee client does at the end), so that a client that crashed or hung still
# leaves a report of the cases it ran.
#
#   python3 scripts/autobahn_reports.py PORT AGENT
import base64, os, socket, sys
port, agent = int(sys.argv[1]), sys.argv[2]
key = base64.b64encode(os.urandom(16)).decode()
s = socket.create_connection(("127.0.0.1", port), timeout=30)
s.sendall((
    "GET /updateReports?agent=%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (agent, port, key)
).encode())
try:
    while s.recv(65536):   # the server closes the connection once reports are written
        pass
except ConnectionResetError:
    pass
