/** The site's certificate: self-signed, provided by the user, or from Let's Encrypt. */
import type { Reader } from "./reader";
import type { TlsSettings } from "./types";

const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;

/** Let's Encrypt's production ACME directory (RFC 8555 directory URL, letsencrypt.org/docs/acme-protocol-updates). */
export const LETSENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory";

function isHttpsUrl(text: string): boolean {
    if (/\s/.test(text)) return false;
    try {
        const url = new URL(text);
        return url.protocol === "https:" && url.hostname !== "" && url.username === "" && url.password === "";
    } catch {
        return false;
    }
}

export function readTls(r: Reader, site: { domain?: string; production: boolean }): TlsSettings {
    const mode = r.oneOf("tlsMode", ["selfSigned", "provided", "letsencrypt"] as const);
    const tls: TlsSettings = { mode, letsencryptServer: "" };
    const certificate = r.string("tlsCertificate").trim();
    const privateKey = r.secret("tlsPrivateKey");
    if (mode === "provided") {
        if (!/^-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----$/.test(certificate)) {
            if (certificate === "") r.failMissing("tlsCertificate", "tlsMode provided needs the PEM certificate chain (pulumi config set tlsCertificate < fullchain.pem)");
            else r.fail("tlsCertificate", certificate.slice(0, 40) + "...", "must be a PEM certificate chain (-----BEGIN CERTIFICATE----- ...)");
        }
        if (!privateKey) r.failMissing("tlsPrivateKey", "tlsMode provided needs the PEM private key (pulumi config set --secret tlsPrivateKey < privkey.pem)");
        else if (!/^-----BEGIN (?:RSA |EC |)PRIVATE KEY-----[\s\S]+-----END (?:RSA |EC |)PRIVATE KEY-----$/.test(privateKey.reveal().trim())) {
            r.fail("tlsPrivateKey", privateKey, "must be a PEM private key (-----BEGIN PRIVATE KEY----- ...)");
        }
        tls.certificate = certificate;
        tls.privateKey = privateKey;
    }
    const email = r.string("letsencryptEmail").trim();
    tls.letsencryptServer = r.string("letsencryptServer").trim();
    if (!isHttpsUrl(tls.letsencryptServer)) {
        r.fail(
            "letsencryptServer",
            tls.letsencryptServer,
            `must be the https:// URL of an ACME directory: ${LETSENCRYPT_PRODUCTION} (the default), or Let's Encrypt's staging, https://acme-staging-v02.api.letsencrypt.org/directory`,
        );
    }
    if (mode === "letsencrypt") {
        if (!site.domain) r.failMissing("domain", "tlsMode letsencrypt needs the public host name that points at the load balancer");
        if (!EMAIL.test(email)) r.fail("letsencryptEmail", email, "tlsMode letsencrypt needs a valid account e-mail for expiry notices");
        tls.letsencryptEmail = email;
    } else if (email !== "" && !EMAIL.test(email)) {
        r.fail("letsencryptEmail", email, "must be a valid e-mail address (it is only used with tlsMode letsencrypt)");
    }
    if (site.production && mode === "selfSigned") {
        r.fail("tlsMode", mode, "a production stack needs a certificate browsers trust: use provided or letsencrypt");
    }
    return tls;
}
