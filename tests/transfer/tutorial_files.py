"""The tutorial's file-download server and client (tutorial.txt, 文件下载服务器 and
文件下载客户端), copied as they are. Only the address changed, so a test can run them on
loopback: ``server PORT`` (0: any; the port is printed) and ``client PORT``; each runs from
the folder it serves from or downloads into, as in the tutorial. The client reads the name
from stdin, as its ``input()`` does.
"""

import sys


def server(port):
    import os
    import socket

    server_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    server_socket.bind(("127.0.0.1", port))
    server_socket.listen(128)
    print(server_socket.getsockname()[1], flush=True)  # for the test: the port

    # 接收客户端的请求
    client_socket, client_addr = server_socket.accept()  # noqa: RUF059 (as written)
    file_name = client_socket.recv(1024).decode("utf8")

    if os.path.isfile(file_name):
        # print('读取文件,返回给客户端')
        with open(file_name, "rb") as file:
            content = file.read()
            client_socket.send(content)
    else:
        print("文件不存在")


def client(port):
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    s.connect(("127.0.0.1", port))

    # s.send('hello'.encode('utf8'))
    file_name = input("清输入您要下载的文件名:")
    s.send(file_name.encode("utf8"))

    with open(file_name, "wb") as file:
        while True:
            content = s.recv(1024)
            if not content:
                break
            file.write(content)

    s.close()


if __name__ == "__main__":
    {"server": server, "client": client}[sys.argv[1]](int(sys.argv[2]))
