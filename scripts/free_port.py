# Print a free TCP port on 127.0.0.1 (asked of the kernel).
#
#   python3 scripts/free_port.py
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
