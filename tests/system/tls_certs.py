"""Certificates for the tests that run TLS, made with the openssl command:
ca.pem; server.pem/key (collector.test, 127.0.0.1); client.pem/key;
other-ca.pem with other-client.pem/key."""
import subprocess


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(d):
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "30",
                "-subj", f"/CN=sluice {ca}", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    leaves = [("server", "ca", "collector.test", "DNS:collector.test,IP:127.0.0.1"),
              ("client", "ca", "sender.test", "DNS:sender.test"),
              ("other-client", "other-ca", "sender.test", "DNS:sender.test")]
    for name, ca, cn, san in leaves:
        (d / f"{name}.ext").write_text(f"subjectAltName={san}\n"
                                       "extendedKeyUsage=serverAuth,clientAuth\n")
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
                cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "30", "-extfile",
                f"{name}.ext", cwd=d)
    return d
