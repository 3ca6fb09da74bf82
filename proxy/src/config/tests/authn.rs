//! Config of `type: jwt` and `type: http`: every key's error names file, line and key.

use super::super::*;

const LISTENER: &str = "listeners:\n  - name: x\n    bind: \"127.0.0.1:1884\"\n    plaintext: true\n";
/// Line of the first key after `type:` in [`auth`] (listener: 4 lines, `authentication:`, name, type).
const FIRST: u64 = 8;

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("secret"), "0123456789abcdef0123456789abcdef\n").expect("write");
        std::fs::write(dir.path().join("short"), "tooshort").expect("write");
        std::fs::write(dir.path().join("bad64"), "%%% not base64 %%%").expect("write");
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("ec key");
        std::fs::write(dir.path().join("ec.pem"), ec.public_key_pem()).expect("write");
        Dir { dir }
    }

    /// One authenticator `a` of the given type with `body` (already indented by four spaces).
    fn load(&self, kind: &str, body: &str) -> Result<Config, ConfigError> {
        let text = format!("{LISTENER}authentication:\n  - name: a\n    type: {kind}\n{body}");
        from_str(&text, &self.dir.path().join("moat.yaml"))
    }

    fn issues(&self, kind: &str, body: &str) -> Vec<(u64, String, String)> {
        match self.load(kind, body) {
            Ok(_) => panic!("config unexpectedly valid:\n{body}"),
            Err(e) => e.issues.into_iter().map(|i| (i.line, i.key, i.message)).collect(),
        }
    }

    /// Asserts one issue with `key` on `line` whose message contains `text`.
    fn expect(&self, kind: &str, body: &str, line: u64, key: &str, text: &str) {
        let found = self.issues(kind, body);
        assert!(
            found.iter().any(|(l, k, m)| *l == line && k == key && m.contains(text)),
            "expected {line}:{key}: …{text}… in {found:?}"
        );
    }
}

#[test]
fn valid_jwt_and_http_configs_load() {
    let d = Dir::new();
    d.load("jwt", "    algorithms: [HS256]\n    secret_file: secret\n    required_claims:\n      sub: \"${clientid}\"\n")
        .expect("hs256");
    d.load(
        "jwt",
        "    algorithms: [ES256]\n    public_key: ec.pem\n    leeway: 0s\n    disconnect_on_expiry: true\n",
    )
    .expect("es256");
    d.load(
        "jwt",
        "    algorithms: [RS256]\n    jwks_url: \"https://idp.example/jwks\"\n    jwks_refresh: 1m\n",
    )
    .expect("jwks");
    d.load(
        "http",
        "    url: \"http://127.0.0.1:9/auth\"\n    timeout: 2s\n    on_failure: ignore\n    cache_ttl: 30s\n",
    )
    .expect("http");
}

#[test]
fn jwt_algorithms_are_required_and_pinned_to_the_key_type() {
    let d = Dir::new();
    d.expect("jwt", "    secret_file: secret\n", 7, "authentication[0].algorithms", "needs `algorithms`");
    d.expect(
        "jwt",
        "    algorithms: [none]\n    secret_file: secret\n",
        FIRST,
        "authentication[0].algorithms",
        "`none` is not",
    );
    d.expect(
        "jwt",
        "    algorithms: []\n    secret_file: secret\n",
        FIRST,
        "authentication[0].algorithms",
        "must not be empty",
    );
    // An HMAC never uses a public key, and a secret never verifies RS256 (alg confusion).
    d.expect(
        "jwt",
        "    algorithms: [HS256]\n    public_key: ec.pem\n",
        FIRST,
        "authentication[0].algorithms",
        "need secret_file",
    );
    d.expect(
        "jwt",
        "    algorithms: [RS256]\n    secret_file: secret\n",
        FIRST,
        "authentication[0].algorithms",
        "only HS256",
    );
    d.expect(
        "jwt",
        "    algorithms: [RS256]\n    public_key: ec.pem\n",
        FIRST + 1,
        "authentication[0].public_key",
        "not an RSA public key",
    );
    d.expect(
        "jwt",
        "    algorithms: [RS256, ES256]\n    public_key: ec.pem\n",
        FIRST,
        "authentication[0].algorithms",
        "not a mix",
    );
}

#[test]
fn jwt_key_sources_are_checked() {
    let d = Dir::new();
    d.expect("jwt", "    algorithms: [HS256]\n", 7, "authentication[0].secret_file", "needs one of");
    d.expect(
        "jwt",
        "    algorithms: [HS256]\n    secret_file: short\n",
        FIRST + 1,
        "authentication[0].secret_file",
        "at least 32",
    );
    d.expect(
        "jwt",
        "    algorithms: [HS256]\n    secret_file: missing\n",
        FIRST + 1,
        "authentication[0].secret_file",
        "missing",
    );
    d.expect(
        "jwt",
        "    algorithms: [HS256]\n    secret_file: bad64\n    secret_base64: true\n",
        FIRST + 1,
        "authentication[0].secret_file",
        "not base64",
    );
    d.expect(
        "jwt",
        "    algorithms: [ES256]\n    public_key: ec.pem\n    jwks_url: \"https://x/\"\n",
        FIRST + 2,
        "authentication[0].jwks_url",
        "only one key source",
    );
    d.expect(
        "jwt",
        "    algorithms: [ES256]\n    public_key: ec.pem\n    secret_base64: true\n",
        FIRST + 2,
        "authentication[0].secret_base64",
        "only with secret_file",
    );
    d.expect(
        "jwt",
        "    algorithms: [ES256]\n    public_key: ec.pem\n    jwks_refresh: 1m\n",
        FIRST + 2,
        "authentication[0].jwks_refresh",
        "only with jwks_url",
    );
    d.expect(
        "jwt",
        "    algorithms: [RS256]\n    jwks_url: \"http://idp.example/jwks\"\n",
        FIRST + 1,
        "authentication[0].jwks_url",
        "loopback",
    );
    d.expect(
        "jwt",
        "    algorithms: [RS256]\n    jwks_url: \"https://x/\"\n    jwks_timeout: 0s\n",
        FIRST + 2,
        "authentication[0].jwks_timeout",
        "greater than zero",
    );
    d.expect(
        "jwt",
        "    algorithms: [RS256]\n    jwks_file: ec.pem\n",
        FIRST + 1,
        "authentication[0].jwks_file",
        "not a JWKS",
    );
}

#[test]
fn jwt_claim_options_are_checked() {
    let d = Dir::new();
    let base = "    algorithms: [HS256]\n    secret_file: secret\n";
    d.expect(
        "jwt",
        &format!("{base}    token_from: header\n"),
        FIRST + 2,
        "authentication[0].token_from",
        "not password or username",
    );
    d.expect("jwt", &format!("{base}    leeway: 5\n"), FIRST + 2, "authentication[0].leeway", "no unit");
    d.expect(
        "jwt",
        &format!("{base}    required_claims:\n      iss: ok\n      sub: \"${{password}}\"\n"),
        FIRST + 4,
        "authentication[0].required_claims.sub",
        "unknown placeholder",
    );
    d.expect(
        "jwt",
        &format!("{base}    username_claim: \"\"\n"),
        FIRST + 2,
        "authentication[0].username_claim",
        "must not be empty",
    );
}

#[test]
fn keys_of_another_type_are_refused() {
    let d = Dir::new();
    d.expect(
        "anonymous",
        "    algorithms: [HS256]\n",
        FIRST,
        "authentication[0].algorithms",
        "does not apply to type `anonymous`",
    );
    d.expect(
        "password_file",
        "    path: users.yaml\n    cache_ttl: 5s\n",
        FIRST + 1,
        "authentication[0].cache_ttl",
        "does not apply",
    );
    d.expect(
        "jwt",
        "    algorithms: [HS256]\n    secret_file: secret\n    url: \"https://x/\"\n",
        FIRST + 2,
        "authentication[0].url",
        "does not apply",
    );
    d.expect(
        "jwt",
        "    algorithms: [HS256]\n    secret_file: secret\n    path: x\n",
        FIRST + 2,
        "authentication[0].path",
        "does not apply",
    );
    d.expect(
        "http",
        "    url: \"https://x/\"\n    leeway: 1s\n",
        FIRST + 1,
        "authentication[0].leeway",
        "does not apply",
    );
}

#[test]
fn http_options_are_checked() {
    let d = Dir::new();
    d.expect("http", "    timeout: 1s\n", 7, "authentication[0].url", "needs `url`");
    d.expect("http", "    url: \"http://10.0.0.1/auth\"\n", FIRST, "authentication[0].url", "loopback");
    d.expect(
        "http",
        "    url: \"https://u:p@x/auth\"\n",
        FIRST,
        "authentication[0].url",
        "credentials in the URL",
    );
    d.expect(
        "http",
        "    url: \"https://x/\"\n    on_failure: allow\n",
        FIRST + 1,
        "authentication[0].on_failure",
        "not deny or ignore",
    );
    d.expect(
        "http",
        "    url: \"https://x/\"\n    timeout: 0s\n",
        FIRST + 1,
        "authentication[0].timeout",
        "greater than zero",
    );
    d.expect(
        "http",
        "    url: \"https://x/\"\n    cache_size: 10\n",
        FIRST + 1,
        "authentication[0].cache_size",
        "only with cache_ttl",
    );
    d.expect(
        "http",
        "    url: \"https://x/\"\n    cache_ttl: 1m\n    cache_size: 0\n",
        FIRST + 2,
        "authentication[0].cache_size",
        "between 1 and",
    );
}
