/**
 * Real keys and certificates for the local cloud, standing in for what the
 * @pulumi/tls provider computes: OpenSSH key pairs from ssh-keygen, PEM keys
 * and self-signed certificates from OpenSSL.
 */
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

function withTempDir<T>(fn: (dir: string) => T): T {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyc-keys-"));
    try {
        return fn(dir);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

import type { PrivateKeyOutputs } from "./fakeCloud";

/** The outputs of tls.PrivateKey for ED25519 and ECDSA (P256/P384). */
export function generatePrivateKey(algorithm: string, ecdsaCurve = "P256"): PrivateKeyOutputs {
    if (algorithm === "ED25519") {
        return withTempDir(dir => {
            const file = path.join(dir, "key");
            execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", file]);
            const { privateKey, publicKey } = crypto.generateKeyPairSync("ed25519");
            // The PEM forms are not used by the program for ED25519; keep them consistent in shape only.
            return {
                privateKeyOpenssh: fs.readFileSync(file, "utf8"),
                publicKeyOpenssh: fs.readFileSync(`${file}.pub`, "utf8").trim() + "\n",
                privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
                publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
            };
        });
    }
    if (algorithm === "ECDSA") {
        const namedCurve = { P224: "P-224", P256: "P-256", P384: "P-384", P521: "P-521" }[ecdsaCurve] ?? "P-256";
        const { privateKey, publicKey } = crypto.generateKeyPairSync("ec", { namedCurve });
        const privateKeyPem = privateKey.export({ type: "sec1", format: "pem" }).toString();
        return {
            privateKeyPem,
            privateKeyOpenssh: "",
            publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
            publicKeyOpenssh: "",
        };
    }
    throw new Error(`local cloud: tls.PrivateKey algorithm ${algorithm} is not supported here`);
}

export interface SelfSignedCertInputs {
    privateKeyPem: string;
    subject?: { commonName?: string; organization?: string };
    dnsNames?: string[];
    ipAddresses?: string[];
    validityPeriodHours: number;
}

/** The certPem of tls.SelfSignedCert. */
export function selfSignedCert(i: SelfSignedCertInputs): string {
    return withTempDir(dir => {
        const key = path.join(dir, "key.pem");
        const cert = path.join(dir, "cert.pem");
        fs.writeFileSync(key, i.privateKeyPem, { mode: 0o600 });
        const subject = `/CN=${i.subject?.commonName ?? "localhost"}${i.subject?.organization ? `/O=${i.subject.organization}` : ""}`;
        const san = [...(i.dnsNames ?? []).map(d => `DNS:${d}`), ...(i.ipAddresses ?? []).map(a => `IP:${a}`)];
        const days = String(Math.max(1, Math.ceil(i.validityPeriodHours / 24)));
        execFileSync("openssl", [
            "req", "-x509", "-new", "-key", key, "-out", cert, "-days", days, "-subj", subject,
            "-addext", "extendedKeyUsage=serverAuth", "-addext", "keyUsage=digitalSignature,keyEncipherment",
            ...(san.length ? ["-addext", `subjectAltName=${san.join(",")}`] : []),
        ], { stdio: "pipe" });
        return fs.readFileSync(cert, "utf8");
    });
}
