//! Token providers against a loopback mock authority, caching with a fake clock, and
//! redaction of every secret-holding type.

mod http_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_support::{Reply, TestServer, serve};
use rps_session::token::{
    AccessToken, Caching, CertificateCredential, ClientCertificate, ClientSecret, Clock,
    DeviceCode, DeviceCodePrompt, EnvToken, FileToken, OAuthConfig, RefreshToken, StaticToken,
    TokenError, TokenFuture, TokenProvider, jwt_expiry,
};
use serde_json::json;

/// A throwaway RSA key made for these tests (PKCS#8).
const TEST_KEY_PKCS8: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC9//wollAip0PW\ndh6Zj5yXaKi7pbFafKM2c2C6VeqzvoTVX20VYdTmE/ttZY3ECqRc43QdGYBHaVvc\nLSYyXH8y8RFn2Psm8mIpHxNySZlWGyhT8FAVw+2bYsZIgttIQov7x3oL0KzrVeBN\nLvlyJFA8ZSub9AQ7bcr8vPc9Th3niyepj0/ISgizyPICh7Le2zQyZSjdlGjKd1LB\n1BDZ/xO4UbZws0EX2aXZsXAb83YxrMb95pAG7rhXE+HHXeHiShB9uF7CG9/Hi565\nYYUJe8OAJjNFPV/DIDhICxpi0LWCK7D/zPgSRET+UIUoppRYWk1vvgeoJALOYL5A\nofFMF8dNAgMBAAECggEAUbh0oJBmT0FaMDgF2U6nr4fYaz1NFvpcyOK/S+YAWOct\nAwlURcoaZAtcLSVs4FEjeMBsBMgfIJf0ZrMUpryaCTMepWfyPkIqbj1rg9CcHyj3\nI4NNLs9it164oh+GaYIV62lU2RgcB+yb2RbHO4za5d8t7pn56AXFNQeh38BlpFy6\n/TaIlA+6NenRfbKDUJKadox8oPWhjrnplRDyLYYSCz3fXpdK5BBRiepIUw+Nfro0\nl7yIIWai8Usvfd6gs2pW4AO4t8GTu+t0lEHytc2FZAQzIAITI5uzocVa/sVXkXfH\nL4zNeT2mhl4hw36em6tvL1/tpw47CyzSUw6S/w7hEQKBgQD2sT/kHjaYLZxO3qsO\nrXjvAR7nOenPZN0+msb6wYDutWA+c4XmD63DyMnxV7AJS+27fkxb1wE42i4iW6yy\nIeieWLCKO43bLDVF2jeEzXZ6Ao6tJBurat0rxN5mrHbi3kGiVdceHeqFmFCNgxf4\nL0ufVhlL1aWI2XxaNPhRzmBD/wKBgQDFKyepeGCKz3Ja7OX35lmiEkvuU8L9Cj40\nIUnVMTrCzmoWsx4VpvdWxBwKbwpG82h7jRshpIOQWC/1LQIHOk30GmY9HgUIFKRp\nE4/MzAVUql6Iq6M4RWHTPzJmAbDqOkehisqcwqmZAAXHUPuus/SI4BKK3Kq0SSxX\njMx6kUfEswKBgCMif40H2JK3/EknYYmHn2+64yHfl7NYFEK0XJ6eLLTS1FBQt8Na\nfE8kK87ZxFKuo79Ob6Ws65mjSWrPT7tXJQBYdVxauwt6MmQufjXF5ZffAV8bg21Y\nnQN82IgbDBunuAVc4HSDokFAvkhJYYKRid25r4Sjex4Qi6t1W+Ca2g8VAoGAe9w6\nVDns3AapnfkIFo08bZX04Uj5SyCuJu1qhmUgttQYzR3EnnF/G6CixOMwn5W1Yzgn\nfSDuDTV5GxolFglIgzo6U9aR7puZFPFW+p6IEsHcFRtNs8HSTHR84pvZWas26IJZ\n+dRH2nerKaT0FrGxwnKQ827gRdVZ573pjm3JmgUCgYEApXdPI/fFrGAwH0gG/Mj5\nEnEvCHbb1tQ0FgqpjcX1EKsEptnCpsE7z4EpN9BThRbLWaC6UGVjbzlsenR3OuA5\n8XvZ1jPwakzEmTbgNuiPRVtqbQWhTewh04tRu/7olFLmwx86gduKZ7tLiRxD0DED\nfZaIREeCZlfx0WKmfpNrDAk=\n-----END PRIVATE KEY-----";
/// The same key encrypted (PBES2, AES-256-CBC) with the password `fake-key-password`.
const TEST_KEY_ENCRYPTED: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFLTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQImIsWc7ZU+P4CAggA\nMAwGCCqGSIb3DQIJBQAwHQYJYIZIAWUDBAEqBBDfvOAUwdTW4kH8335Di3vMBIIE\n0Pr3GhyhN0thq+VdoR8Rv/Cgivef6vb8nqzVou88qihHGi6lHWu230nZ3lZly+7F\n+6Vj1TWCR5+2MRGgFfQYv2g4gxyaJLtLQK0mcyaBDiR/IIdWSd8l8zWA2q9WnHLx\nffNyQ/Eg4GPvhmB68h6qKvkkqgst6dPH1NR1Hdby4cblBly0dtJwubfOiCzIdR/E\nlzOWzEJWVfbWP6t7HHf0JYzTB6Xl5+RTVM79ZNdNd+HQ6yIF1fTUsjnRJng2ybfl\njxx4CZzs1mBK6Rr/GVDEGxqjEBXq7CJCrOsP5SOzG6FkQ8hb5MRpoU381sDSyRja\nLXVGLrTIoWmM3uLc5MVXFee6tMBWiD9dcyarrd1aGyxCws5jFV2pX0HHbYAmcBBH\nc7tVcA7IsubtLMIaqY+aBUB8uanf20cDVY5v2KDuEWUdwit+Gs6lZPO/OFQoWknG\nA5Eg6Mwcox8xyMw3xJwJ1u0UD4LQNuCS1Ud51pG0q5XdNt/5xVhYsJGUAQCkg1xA\n9ehJzxi9eqGyUFo94PqdSdRtykqUUdMO3qDheoftSky9lnP9oGlOQbUf4sv6YufU\nIA1Y8hxY9nDlA8oUwUATHAH1gOuIBJnGpjLOnSp7jLi+RhKORHE7QnVlLfbC0xj+\nLrcFjxR6ijmik5+JRz/uLOfvGpiLaELBDRf3t0C4HlHkxjqOynmchoF7ImDiNii3\n8lddVRYv/fnmkvt68F44Z6CaRAozggfcQJoBMYu1NETlKTsgy0S1jLhWsjxwUPq/\n/SS7p3wqdcHtFmsUbIXOsJ5yeGdgU/DpYd0k3qsxVuqExTWoN1wGLSgv10JlZMfm\n5kr5td4vRnl1o6HmAES3zIXJSqvc0zUE9iVMl8E5M02MILMYqETPkZdidd8tcLQz\n+WhY9ChLPksQlO6/vmMIxUIu/XXBdKBgGj26eY96W3Nfp+p8YYFBn3tFmCOXsG9/\n36K/PPfRqYk2BnOFy7ypZw4RDKrLn8RMMrrLLe0tSBx9HHKgn0AQ8RK++FpI7tqD\nRfDOAbpbNqnLj1vlNYF0KjXg68t+JQ5X5KdFJUTq2K02ldMZ3bRkCD7EXLdk/RsY\nohW+EGJCj7vw+TYBV6PFkHbArlejL4V5nJkbTQD5xs1W1RsTKkzFVnutZOyAe4CN\ntLRxttFuYakbUwh4654z9f/spm0t4yElWXkRabNYkMGXmk8Aw4kPNoibk2+Z9gu3\nHgNaIK0G/0Tv2JHlVchmS6gMaSORtFRNW5q+po695R1K9sEnRu0j/nORDLEBuc//\nzJ4UdAV0msRMygeclRHsP2A40KUd6QB4VHGAH1jHDv+smmCBxJ9E7uN828sPl+H8\nFWcZRXHOKvcIpXkuo2GFtwO79utu9qeCdqDqtwHvicaFvcRk0IkGlxBK4Bat1z9R\nb326jHALfeP/3v61CgBLGUftR5jrI/wiTpeMgqxdeMbeRibeu3OcPut30I6gaMKJ\nuptPXKOakyIb+3iIR2vMV3LASM89KXS7oofba6Pfe6HBJau19r4j0r1AtDV9+A6C\n29RhW69gRosLJqdw8le1o30jNcxv545Wj425d+lQ2cGJe1MFq/5rMYg3Anw8fqYQ\n3AheT/44R23nPEpKb6lqNfXecV9p+GcIPzZo6YSNnCQn\n-----END ENCRYPTED PRIVATE KEY-----";
/// The same key as PKCS#1.
const TEST_KEY_PKCS1: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAvf/8KJZQIqdD1nYemY+cl2iou6WxWnyjNnNgulXqs76E1V9t\nFWHU5hP7bWWNxAqkXON0HRmAR2lb3C0mMlx/MvERZ9j7JvJiKR8TckmZVhsoU/BQ\nFcPtm2LGSILbSEKL+8d6C9Cs61XgTS75ciRQPGUrm/QEO23K/Lz3PU4d54snqY9P\nyEoIs8jyAoey3ts0MmUo3ZRoyndSwdQQ2f8TuFG2cLNBF9ml2bFwG/N2MazG/eaQ\nBu64VxPhx13h4koQfbhewhvfx4ueuWGFCXvDgCYzRT1fwyA4SAsaYtC1giuw/8z4\nEkRE/lCFKKaUWFpNb74HqCQCzmC+QKHxTBfHTQIDAQABAoIBAFG4dKCQZk9BWjA4\nBdlOp6+H2Gs9TRb6XMjiv0vmAFjnLQMJVEXKGmQLXC0lbOBRI3jAbATIHyCX9Gaz\nFKa8mgkzHqVn8j5CKm49a4PQnB8o9yODTS7PYrdeuKIfhmmCFetpVNkYHAfsm9kW\nxzuM2uXfLe6Z+egFxTUHod/AZaRcuv02iJQPujXp0X2yg1CSmnaMfKD1oY656ZUQ\n8i2GEgs9316XSuQQUYnqSFMPjX66NJe8iCFmovFLL33eoLNqVuADuLfBk7vrdJRB\n8rXNhWQEMyACEyObs6HFWv7FV5F3xy+MzXk9poZeIcN+npurby9f7acOOwss0lMO\nkv8O4RECgYEA9rE/5B42mC2cTt6rDq147wEe5znpz2TdPprG+sGA7rVgPnOF5g+t\nw8jJ8VewCUvtu35MW9cBONouIlussiHonliwijuN2yw1Rdo3hM12egKOrSQbq2rd\nK8TeZqx24t5BolXXHh3qhZhQjYMX+C9Ln1YZS9WliNl8WjT4Uc5gQ/8CgYEAxSsn\nqXhgis9yWuzl9+ZZohJL7lPC/Qo+NCFJ1TE6ws5qFrMeFab3VsQcCm8KRvNoe40b\nIaSDkFgv9S0CBzpN9BpmPR4FCBSkaROPzMwFVKpeiKujOEVh0z8yZgGw6jpHoYrK\nnMKpmQAFx1D7rrP0iOASityqtEksV4zMepFHxLMCgYAjIn+NB9iSt/xJJ2GJh59v\nuuMh35ezWBRCtFyeniy00tRQULfDWnxPJCvO2cRSrqO/Tm+lrOuZo0lqz0+7VyUA\nWHVcWrsLejJkLn41xeWX3wFfG4NtWJ0DfNiIGwwbp7gFXOB0g6JBQL5ISWGCkYnd\nua+Eo3seEIurdVvgmtoPFQKBgHvcOlQ57NwGqZ35CBaNPG2V9OFI+UsgribtaoZl\nILbUGM0dxJ5xfxugosTjMJ+VtWM4J30g7g01eRsaJRYJSIM6OlPWke6bmRTxVvqe\niBLB3BUbTbPB0kx0fOKb2VmrNuiCWfnUR9p3qymk9BaxscJykPNu4EXVWee96Y5t\nyZoFAoGBAKV3TyP3xaxgMB9IBvzI+RJxLwh229bUNBYKqY3F9RCrBKbZwqbBO8+B\nKTfQU4UWy1mgulBlY285bHp0dzrgOfF72dYz8GpMxJk24Dboj0Vbam0FoU3sIdOL\nUbv+6JRS5sMfOoHbime7S4kcQ9AxA32WiERHgmZX8dFipn6TawwJ\n-----END RSA PRIVATE KEY-----";

const TENANT: &str = "00000000-1111-2222-3333-444444444444";
const CLIENT_ID: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

fn config(server: &TestServer) -> OAuthConfig {
    OAuthConfig::new(TENANT, CLIENT_ID)
        .authority(server.http("/"))
        .allow_insecure_http(true)
}

fn token_reply(token: &str, refresh: Option<&str>) -> Reply {
    let mut v = json!({"token_type": "Bearer", "expires_in": 3599, "access_token": token});
    if let Some(r) = refresh {
        v["refresh_token"] = json!(r);
    }
    Reply::json(200, v)
}

#[tokio::test]
async fn client_secret_posts_the_form() {
    let server = serve(|_, _| token_reply("fake-at-1", None)).await;
    let p = ClientSecret::new(config(&server), "fake-client-secret");
    let before = SystemTime::now();
    let t = p.token().await.unwrap();
    assert_eq!(t.token.expose(), "fake-at-1");
    assert!(t.expires_at >= before + Duration::from_secs(3599));
    let r = &server.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path(), format!("/{TENANT}/oauth2/v2.0/token"));
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let mut form = r.form();
    form.sort();
    assert_eq!(
        form,
        vec![
            ("client_id".to_string(), CLIENT_ID.to_string()),
            (
                "client_secret".to_string(),
                "fake-client-secret".to_string()
            ),
            ("grant_type".to_string(), "client_credentials".to_string()),
            (
                "scope".to_string(),
                "https://outlook.office365.com/.default".to_string()
            ),
        ]
    );
}

#[tokio::test]
async fn authority_errors_are_typed_and_secret_free() {
    let server = serve(|_, _| {
        Reply::json(
            401,
            json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1"}),
        )
    })
    .await;
    let p = ClientSecret::new(config(&server), "fake-client-secret");
    let err = p.token().await.unwrap_err();
    match &err {
        TokenError::Denied {
            status,
            code,
            description,
            ..
        } => {
            assert_eq!(*status, 401);
            assert_eq!(code, "invalid_client");
            assert_eq!(
                description.as_deref(),
                Some("AADSTS7000215: Invalid client secret provided.")
            );
        }
        other => panic!("{other:?}"),
    }
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("fake-client-secret"), "{shown}");

    let garbage = serve(|_, _| Reply::ok("<html>")).await;
    let err = ClientSecret::new(config(&garbage), "s")
        .token()
        .await
        .unwrap_err();
    assert!(matches!(err, TokenError::InvalidResponse { .. }), "{err:?}");
    let no_token = serve(|_, _| Reply::json(200, json!({"expires_in": 5}))).await;
    let err = ClientSecret::new(config(&no_token), "s")
        .token()
        .await
        .unwrap_err();
    assert!(matches!(err, TokenError::InvalidResponse { .. }), "{err:?}");
}

#[tokio::test]
async fn plain_http_authority_needs_opt_in() {
    let server = serve(|_, _| token_reply("x", None)).await;
    let cfg = OAuthConfig::new(TENANT, CLIENT_ID).authority(server.http("/"));
    let err = ClientSecret::new(cfg, "s").token().await.unwrap_err();
    assert!(matches!(err, TokenError::Config { .. }), "{err:?}");
    assert!(server.requests().is_empty());
}

fn test_certificate() -> (String, Vec<u8>) {
    let kp =
        rcgen::KeyPair::from_pem_and_sign_algo(TEST_KEY_PKCS8, &rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["rps-test-app".to_string()])
        .unwrap()
        .self_signed(&kp)
        .unwrap();
    (cert.pem(), cert.der().to_vec())
}

#[tokio::test]
async fn certificate_assertion_verifies_with_the_public_key() {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::Verifier;
    use sha1::Digest;

    let server = serve(|_, _| token_reply("fake-at-cert", None)).await;
    let (cert_pem, cert_der) = test_certificate();
    let cred = CertificateCredential::from_pem(&cert_pem, TEST_KEY_PKCS8).unwrap();
    let p = ClientCertificate::new(config(&server), cred);
    assert_eq!(p.token().await.unwrap().token.expose(), "fake-at-cert");

    let r = &server.requests()[0];
    assert_eq!(
        r.form_value("grant_type").as_deref(),
        Some("client_credentials")
    );
    assert_eq!(
        r.form_value("client_assertion_type").as_deref(),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    assert_eq!(r.form_value("client_secret"), None);
    let jwt = r.form_value("client_assertion").unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(
        header["x5t"],
        URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&cert_der))
    );
    assert_eq!(
        claims["aud"],
        server
            .http(&format!("/{TENANT}/oauth2/v2.0/token"))
            .as_str()
    );
    assert_eq!(claims["iss"], CLIENT_ID);
    assert_eq!(claims["sub"], CLIENT_ID);
    assert_eq!(claims["jti"].as_str().map(str::len), Some(32));
    let iat = claims["iat"].as_u64().unwrap();
    assert_eq!(claims["exp"].as_u64(), Some(iat + 600));
    assert_eq!(claims["nbf"].as_u64(), Some(iat));

    let key = rsa::RsaPrivateKey::from_pkcs8_pem(TEST_KEY_PKCS8).unwrap();
    let verifier = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key.to_public_key());
    let sig =
        rsa::pkcs1v15::Signature::try_from(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice())
            .unwrap();
    verifier
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("assertion signature must verify");
    // A tampered payload must not.
    assert!(
        verifier
            .verify(format!("{}.{}x", parts[0], parts[1]).as_bytes(), &sig)
            .is_err()
    );
}

#[test]
fn certificate_loads_pkcs1_and_files_and_rejects_garbage() {
    let (cert_pem, _) = test_certificate();
    let a = CertificateCredential::from_pem(&cert_pem, TEST_KEY_PKCS8).unwrap();
    let b = CertificateCredential::from_pem(&cert_pem, TEST_KEY_PKCS1).unwrap();
    assert_eq!(a.thumbprint(), b.thumbprint());
    let dir = std::env::temp_dir();
    let combined = dir.join(format!("rps-token-test-{}.pem", std::process::id()));
    std::fs::write(&combined, format!("{cert_pem}\n{TEST_KEY_PKCS1}")).unwrap();
    let c = CertificateCredential::from_pem_files(&combined, &combined).unwrap();
    let _ = std::fs::remove_file(&combined);
    assert_eq!(c.thumbprint(), a.thumbprint());
    assert!(matches!(
        CertificateCredential::from_pem(&cert_pem, "not a key"),
        Err(TokenError::Certificate { .. })
    ));
    assert!(CertificateCredential::from_pem("nope", TEST_KEY_PKCS8).is_err());
    let shown = format!("{a:?}");
    assert!(
        !shown.contains("MII") && shown.contains("<redacted>"),
        "{shown}"
    );
}

fn test_pfx(password: &str, alg: p12_keystore::EncryptionAlgorithm) -> Vec<u8> {
    use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
    let (_, cert_der) = test_certificate();
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(TEST_KEY_PKCS8).unwrap();
    let key_der = key.to_pkcs8_der().unwrap();
    let chain = p12_keystore::PrivateKeyChain::new(
        key_der.as_bytes(),
        [1u8, 2, 3, 4],
        [p12_keystore::Certificate::from_der(&cert_der).unwrap()],
    );
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "rps-test-app",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    store
        .writer(password)
        .encryption_algorithm(alg)
        .write()
        .unwrap()
}

#[test]
fn certificate_loads_from_pfx() {
    use p12_keystore::EncryptionAlgorithm as Alg;
    use rps_session::token::Secret;
    let (cert_pem, _) = test_certificate();
    let from_pem = CertificateCredential::from_pem(&cert_pem, TEST_KEY_PKCS8).unwrap();
    for alg in [
        Alg::PbeWithHmacSha256AndAes256,
        Alg::PbeWithShaAnd3KeyTripleDesCbc,
    ] {
        let pfx = test_pfx("fake-pfx-password", alg);
        let cred =
            CertificateCredential::from_pfx(&pfx, &Secret::new("fake-pfx-password")).unwrap();
        assert_eq!(cred.thumbprint(), from_pem.thumbprint());
        // Same key: the assertions verify alike.
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert!(cred.assertion(CLIENT_ID, "https://aud", now).is_ok());
        let err =
            CertificateCredential::from_pfx(&pfx, &Secret::new("wrong-password")).unwrap_err();
        assert!(matches!(err, TokenError::Certificate { .. }), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("wrong-password"));
    }
    let path = std::env::temp_dir().join(format!("rps-token-test-{}.pfx", std::process::id()));
    std::fs::write(&path, test_pfx("", Alg::PbeWithHmacSha256AndAes256)).unwrap();
    let cred =
        CertificateCredential::from_pfx_file_env(&path, "RPS_TEST_PFX_PASSWORD_NEVER_SET").unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(cred.thumbprint(), from_pem.thumbprint());
    assert!(CertificateCredential::from_pfx(b"not a pfx", &Secret::new("")).is_err());
}

#[test]
fn certificate_loads_an_encrypted_pem_key() {
    use rps_session::token::Secret;
    let (cert_pem, _) = test_certificate();
    let plain = CertificateCredential::from_pem(&cert_pem, TEST_KEY_PKCS8).unwrap();
    let enc = CertificateCredential::from_pem_with_password(
        &cert_pem,
        TEST_KEY_ENCRYPTED,
        &Secret::new("fake-key-password"),
    )
    .unwrap();
    assert_eq!(enc.thumbprint(), plain.thumbprint());
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    // The decrypted key signs.
    let a = enc.assertion(CLIENT_ID, "aud", now).unwrap();
    assert_eq!(a.expose().split('.').count(), 3);
    let err = CertificateCredential::from_pem_with_password(
        &cert_pem,
        TEST_KEY_ENCRYPTED,
        &Secret::new("wrong"),
    )
    .unwrap_err();
    assert!(matches!(err, TokenError::Certificate { .. }), "{err:?}");
    assert!(CertificateCredential::from_pem(&cert_pem, TEST_KEY_ENCRYPTED).is_err());
    // Unencrypted keys pass through.
    assert!(
        CertificateCredential::from_pem_with_password(&cert_pem, TEST_KEY_PKCS1, &Secret::new(""))
            .is_ok()
    );
}

#[tokio::test]
async fn device_code_polls_until_signed_in_then_refreshes() {
    let polls = Arc::new(AtomicUsize::new(0));
    let pc = polls.clone();
    let server = serve(move |r, _| {
        if r.path().ends_with("/devicecode") {
            return Reply::json(
                200,
                json!({
                    "device_code": "fake-device-code",
                    "user_code": "ABCD-EFGH",
                    "verification_uri": "https://microsoft.com/devicelogin",
                    "expires_in": 900,
                    "interval": 1,
                    "message": "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code ABCD-EFGH to authenticate."
                }),
            );
        }
        match r.form_value("grant_type").as_deref() {
            Some("urn:ietf:params:oauth:grant-type:device_code") => match pc.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Reply::json(400, json!({"error": "authorization_pending"})),
                2 => Reply::json(400, json!({"error": "slow_down"})),
                _ => token_reply("fake-at-device", Some("fake-rt-1")),
            },
            Some("refresh_token") => token_reply("fake-at-refreshed", Some("fake-rt-2")),
            _ => Reply::json(400, json!({"error": "unsupported_grant_type"})),
        }
    })
    .await;
    let shown: Arc<Mutex<Vec<DeviceCodePrompt>>> = Arc::default();
    let s = shown.clone();
    let p = DeviceCode::new(
        config(&server).scope("https://outlook.office365.com/.default"),
        Arc::new(move |prompt: &DeviceCodePrompt| s.lock().unwrap().push(prompt.clone())),
    )
    .interval_unit(Duration::from_millis(10));
    let started = std::time::Instant::now();
    let t = p.token().await.unwrap();
    assert_eq!(t.token.expose(), "fake-at-device");
    assert_eq!(polls.load(Ordering::SeqCst), 4);
    // 1 + 1 + 1 units, then slow_down adds 5: at least 8 units of 10 ms.
    assert!(started.elapsed() >= Duration::from_millis(80));
    let prompts = shown.lock().unwrap().clone();
    assert_eq!(prompts.len(), 1);
    assert_eq!(prompts[0].user_code, "ABCD-EFGH");
    assert!(prompts[0].message.contains("ABCD-EFGH"));

    let reqs = server.requests();
    assert_eq!(reqs[0].path(), format!("/{TENANT}/oauth2/v2.0/devicecode"));
    assert_eq!(reqs[0].form_value("client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(
        reqs[0].form_value("scope").as_deref(),
        Some("https://outlook.office365.com/.default offline_access")
    );
    assert_eq!(
        reqs[1].form_value("device_code").as_deref(),
        Some("fake-device-code")
    );

    // The next token comes from the refresh token, with no new prompt.
    let t = p.token().await.unwrap();
    assert_eq!(t.token.expose(), "fake-at-refreshed");
    let last = server.requests().last().cloned().unwrap();
    assert_eq!(
        last.form_value("refresh_token").as_deref(),
        Some("fake-rt-1")
    );
    assert_eq!(shown.lock().unwrap().len(), 1);
    assert!(!format!("{p:?}").contains("fake-rt"));
}

#[tokio::test]
async fn device_code_declined_is_an_error() {
    let server = serve(|r, _| {
        if r.path().ends_with("/devicecode") {
            Reply::json(
                200,
                json!({"device_code": "d", "user_code": "U", "verification_uri": "https://v", "expires_in": 60, "interval": 1}),
            )
        } else {
            Reply::json(400, json!({"error": "authorization_declined", "error_description": "The user declined."}))
        }
    })
    .await;
    let p = DeviceCode::new(config(&server), Arc::new(|_: &DeviceCodePrompt| {}))
        .interval_unit(Duration::from_millis(1));
    let err = p.token().await.unwrap_err();
    assert!(
        matches!(&err, TokenError::Denied { code, .. } if code == "authorization_declined"),
        "{err:?}"
    );

    let expired = serve(|r, _| {
        if r.path().ends_with("/devicecode") {
            Reply::json(200, json!({"device_code": "d", "user_code": "U", "verification_uri": "https://v", "interval": 1}))
        } else {
            Reply::json(400, json!({"error": "expired_token"}))
        }
    })
    .await;
    let p = DeviceCode::new(config(&expired), Arc::new(|_: &DeviceCodePrompt| {}))
        .interval_unit(Duration::from_millis(1));
    assert!(matches!(
        p.token().await,
        Err(TokenError::DeviceCodeExpired)
    ));
}

#[tokio::test]
async fn refresh_token_is_redeemed_and_rotated() {
    let server = serve(|r, i| {
        let rt = r.form_value("refresh_token").unwrap_or_default();
        if r.form_value("grant_type").as_deref() != Some("refresh_token") {
            return Reply::json(400, json!({"error": "unsupported_grant_type"}));
        }
        match (i, rt.as_str()) {
            (0, "fake-rt-a") => token_reply("fake-at-a", Some("fake-rt-b")),
            (1, "fake-rt-b") => token_reply("fake-at-b", None),
            _ => Reply::json(400, json!({"error": "invalid_grant"})),
        }
    })
    .await;
    let p = RefreshToken::new(config(&server), "fake-rt-a");
    assert_eq!(p.token().await.unwrap().token.expose(), "fake-at-a");
    assert_eq!(p.current_refresh_token().expose(), "fake-rt-b");
    assert_eq!(p.token().await.unwrap().token.expose(), "fake-at-b");
    assert_eq!(p.current_refresh_token().expose(), "fake-rt-b");
    let r = &server.requests()[0];
    assert_eq!(r.form_value("client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(
        r.form_value("scope").as_deref(),
        Some("https://outlook.office365.com/.default")
    );
    let err = p.token().await.unwrap_err();
    assert!(matches!(&err, TokenError::Denied { code, .. } if code == "invalid_grant"));
    assert!(!format!("{p:?} {err}").contains("fake-rt"));
}

#[derive(Debug)]
struct FakeClock(Mutex<SystemTime>);

impl FakeClock {
    fn advance(&self, d: Duration) {
        *self.0.lock().unwrap() += d;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

#[derive(Debug)]
struct Issuer {
    clock: Arc<FakeClock>,
    calls: AtomicUsize,
    invalidated: AtomicUsize,
}

impl TokenProvider for Issuer {
    fn token(&self) -> TokenFuture<'_> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let exp = self.clock.now() + Duration::from_secs(3600);
        Box::pin(async move { Ok(AccessToken::new(format!("tok-{n}"), exp)) })
    }

    fn invalidate(&self) {
        self.invalidated.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn caching_refreshes_ahead_of_expiry_and_on_invalidate() {
    let clock = Arc::new(FakeClock(Mutex::new(
        UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    )));
    let issuer = Issuer {
        clock: clock.clone(),
        calls: AtomicUsize::new(0),
        invalidated: AtomicUsize::new(0),
    };
    let c = Caching::new(issuer)
        .with_skew(Duration::from_secs(300))
        .with_clock(clock.clone());
    assert_eq!(c.token().await.unwrap().token.expose(), "tok-1");
    assert_eq!(c.token().await.unwrap().token.expose(), "tok-1");
    clock.advance(Duration::from_secs(3299));
    assert_eq!(
        c.token().await.unwrap().token.expose(),
        "tok-1",
        "still outside the skew"
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        c.token().await.unwrap().token.expose(),
        "tok-2",
        "refreshed 5 min ahead"
    );
    assert_eq!(c.token().await.unwrap().token.expose(), "tok-2");
    c.invalidate();
    assert_eq!(c.inner().invalidated.load(Ordering::SeqCst), 1);
    assert_eq!(c.token().await.unwrap().token.expose(), "tok-3");
    assert_eq!(c.inner().calls.load(Ordering::SeqCst), 3);
    assert!(!format!("{c:?}").contains("tok-"));
}

#[tokio::test]
async fn caching_shares_one_refresh_between_concurrent_callers() {
    let clock = Arc::new(FakeClock(Mutex::new(
        UNIX_EPOCH + Duration::from_secs(1_000),
    )));
    let c = Arc::new(
        Caching::new(Issuer {
            clock: clock.clone(),
            calls: AtomicUsize::new(0),
            invalidated: AtomicUsize::new(0),
        })
        .with_clock(clock),
    );
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move { c.token().await.unwrap() }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().token.expose(), "tok-1");
    }
    assert_eq!(c.inner().calls.load(Ordering::SeqCst), 1);
}

fn fake_jwt(exp: u64) -> String {
    let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
    let p = URL_SAFE_NO_PAD.encode(format!(r#"{{"aud":"x","exp":{exp}}}"#));
    format!("{h}.{p}.sig")
}

#[tokio::test]
async fn static_file_and_env_sources() {
    let jwt = fake_jwt(2_000_000_000);
    assert_eq!(
        jwt_expiry(&jwt),
        Some(UNIX_EPOCH + Duration::from_secs(2_000_000_000))
    );
    assert_eq!(jwt_expiry("opaque"), None);
    let s = StaticToken::new(jwt.clone());
    let t = s.token().await.unwrap();
    assert_eq!(
        t.expires_at,
        UNIX_EPOCH + Duration::from_secs(2_000_000_000)
    );

    let path = std::env::temp_dir().join(format!("rps-token-file-{}", std::process::id()));
    std::fs::write(&path, format!("  {jwt}\n")).unwrap();
    let f = FileToken::new(&path);
    assert_eq!(f.token().await.unwrap().token.expose(), jwt);
    std::fs::write(&path, "opaque-second\n").unwrap();
    let t = f.token().await.unwrap();
    assert_eq!(t.token.expose(), "opaque-second", "re-read on every call");
    assert!(t.expires_at > SystemTime::now());
    std::fs::write(&path, " \n").unwrap();
    assert!(matches!(f.token().await, Err(TokenError::Empty { .. })));
    let _ = std::fs::remove_file(&path);
    assert!(matches!(f.token().await, Err(TokenError::File { .. })));

    let e = EnvToken::new("RPS_TEST_TOKEN_VARIABLE_THAT_IS_NEVER_SET");
    let err = e.token().await.unwrap_err();
    assert!(matches!(err, TokenError::EnvMissing { .. }));
    assert!(
        err.to_string()
            .contains("RPS_TEST_TOKEN_VARIABLE_THAT_IS_NEVER_SET")
    );
}

#[test]
fn token_types_redact_in_debug() {
    let at = AccessToken::new("fake-secret-token-xyz", SystemTime::now());
    let cfg = OAuthConfig::new(TENANT, CLIENT_ID);
    let outputs = [
        format!("{at:?}"),
        format!("{:?}", StaticToken::new("fake-secret-token-xyz")),
        format!(
            "{:?}",
            ClientSecret::new(cfg.clone(), "fake-secret-token-xyz")
        ),
        format!(
            "{:?}",
            RefreshToken::new(cfg.clone(), "fake-secret-token-xyz")
        ),
        format!(
            "{:?}",
            Caching::new(StaticToken::new("fake-secret-token-xyz"))
        ),
        format!(
            "{:?}",
            rps_session::http::Credentials::app_only(
                TENANT,
                Arc::new(StaticToken::new("fake-secret-token-xyz"))
            )
        ),
    ];
    for out in outputs {
        assert!(!out.contains("fake-secret-token-xyz"), "leaked: {out}");
    }
}
