import { utils } from "ssh2";

/**
 * An ed25519 key pair from ssh2 that ssh2 can parse back: about 1 in 200 of the keys its
 * generateKeyPairSync returns are refused by its own parser ("Malformed OpenSSH private key";
 * 15 of 3,000 here), which made tests flake. Draw again until it parses.
 */
export function parsableKeyPair(comment?: string): { private: string; public: string } {
    for (;;) {
        const pair = utils.generateKeyPairSync("ed25519", comment === undefined ? undefined : { comment });
        if (!(utils.parseKey(pair.private) instanceof Error)) return pair;
    }
}
