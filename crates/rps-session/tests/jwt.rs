//! JWT inspection: decoding, typed claims, errors, Exchange readiness and unsigned minting.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use rps_session::jwt::{
    Claims, EXPIRY_MARGIN_SECS, Jwt, JwtError, MAX_TOKEN_LEN, Segment, TokenKind, Warning,
};
use serde_json::json;

const NOW: u64 = 1_700_000_000;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn token(header: &serde_json::Value, claims: &serde_json::Value, sig: &str) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        sig
    )
}

/// Shaped like a client-credentials token Entra ID issues for Exchange Online.
fn app_only_claims() -> serde_json::Value {
    json!({
        "aud": "https://outlook.office365.com",
        "iss": "https://sts.windows.net/7b5c3e1a-0000-4000-8000-000000000001/",
        "iat": NOW - 600,
        "nbf": NOW - 600,
        "exp": NOW + 3000,
        "aio": "E2NgYJi...",
        "app_displayname": "rps automation",
        "appid": "3f1c5a2b-1111-4222-8333-444455556666",
        "appidacr": "2",
        "idp": "https://sts.windows.net/7b5c3e1a-0000-4000-8000-000000000001/",
        "oid": "a0b1c2d3-0000-4000-8000-0000000000aa",
        "roles": ["Exchange.ManageAsApp"],
        "sid": "0f1e2d3c-0000-4000-8000-0000000000bb",
        "sub": "a0b1c2d3-0000-4000-8000-0000000000aa",
        "tid": "7b5c3e1a-0000-4000-8000-000000000001",
        "uti": "abcDEF123",
        "ver": "1.0",
        "wids": ["29232cdf-9323-42fd-ade2-1d097af3e4de", "0997a1d0-0d1d-4acb-b408-d5ca73121e90"]
    })
}

/// Shaped like a delegated token from the Exchange Online PowerShell public client.
fn delegated_claims() -> serde_json::Value {
    json!({
        "aud": "https://outlook.office365.com",
        "iss": "https://sts.windows.net/7b5c3e1a-0000-4000-8000-000000000001/",
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW + 4000,
        "acr": "1",
        "amr": ["pwd", "mfa"],
        "app_displayname": "Microsoft Exchange REST API Based Powershell",
        "appid": "fb78d390-0c51-40cd-8e17-fdbfab77341b",
        "family_name": "Doe",
        "given_name": "John",
        "name": "John Doe",
        "oid": "11111111-2222-4333-8444-555555555555",
        "puid": "10032000ABCDEF",
        "scp": "AdminApi.AccessAsUser.All FfoPowerShell.AccessAsUser.All RemotePowerShell.AccessAsUser.All VivaFeatureAccessPolicy.Manage.All",
        "tid": "7b5c3e1a-0000-4000-8000-000000000001",
        "unique_name": "john@contoso.onmicrosoft.com",
        "upn": "john@contoso.onmicrosoft.com",
        "ver": "1.0",
        "wids": ["62e90394-69f5-4237-9190-012177145e10", "b79fbf4d-3ef9-4689-8143-76b194e85509"]
    })
}

fn rs256() -> serde_json::Value {
    json!({"typ": "JWT", "alg": "RS256", "x5t": "kWbkaa6qs8wsTnBwiiNYOhHbnAw", "kid": "kWbkaa6qs8wsTnBwiiNYOhHbnAw"})
}

#[test]
fn decodes_an_app_only_token() {
    let raw = token(&rs256(), &app_only_claims(), "c2lnbmF0dXJlLWJ5dGVz");
    let jwt = Jwt::decode(&raw).unwrap();
    assert_eq!(jwt.alg(), Some("RS256"));
    assert_eq!(jwt.as_str(), raw);
    let c = jwt.claims();
    assert_eq!(c.aud, ["https://outlook.office365.com"]);
    assert_eq!(
        c.tid.as_deref(),
        Some("7b5c3e1a-0000-4000-8000-000000000001")
    );
    assert_eq!(
        c.appid.as_deref(),
        Some("3f1c5a2b-1111-4222-8333-444455556666")
    );
    assert_eq!(c.app_displayname.as_deref(), Some("rps automation"));
    assert_eq!(c.roles, ["Exchange.ManageAsApp"]);
    assert_eq!(c.wids.len(), 2);
    assert_eq!(c.exp, (NOW + 3000) as i64);
    assert_eq!(c.iat, Some((NOW - 600) as i64));
    assert_eq!(c.kind(), TokenKind::AppOnly);
    assert_eq!(c.user_name(), None);
    assert_eq!(c.exchange_cloud(), Some("worldwide and GCC"));
    // Unknown claims are kept, known ones are not duplicated.
    assert_eq!(c.extra.get("uti"), Some(&json!("abcDEF123")));
    assert_eq!(c.extra.get("ver"), Some(&json!("1.0")));
    assert!(!c.extra.contains_key("roles"));
    assert!(jwt.exchange_readiness(at(NOW)).is_empty());
    assert!(!jwt.is_expired(at(NOW)));
    assert!(jwt.is_expired(at(NOW + 3000)));
}

#[test]
fn decodes_a_delegated_token() {
    let raw = format!("Bearer {}", token(&rs256(), &delegated_claims(), "c2ln"));
    let jwt = Jwt::decode(&raw).unwrap();
    let c = jwt.claims();
    assert_eq!(c.kind(), TokenKind::Delegated);
    assert_eq!(c.user_name(), Some("john@contoso.onmicrosoft.com"));
    assert_eq!(c.scp.len(), 4);
    assert!(
        c.scp
            .iter()
            .any(|s| s == "RemotePowerShell.AccessAsUser.All")
    );
    assert_eq!(c.extra.get("amr"), Some(&json!(["pwd", "mfa"])));
    assert!(jwt.exchange_readiness(at(NOW)).is_empty());
    assert!(!jwt.as_str().starts_with("Bearer"));
}

#[test]
fn v2_shapes_aud_arrays_and_azp() {
    let claims = json!({
        "aud": ["api://other", "https://outlook.office365.us/"],
        "azp": "app-v2",
        "preferred_username": "ops@contoso.us",
        "scp": "RemotePowerShell.AccessAsUser.All",
        "exp": 1.7e9,
        "idtyp": "user"
    });
    let jwt = Jwt::decode(&token(&rs256(), &claims, "")).unwrap();
    let c = jwt.claims();
    assert_eq!(c.aud.len(), 2);
    assert_eq!(c.appid.as_deref(), Some("app-v2"));
    assert_eq!(c.user_name(), Some("ops@contoso.us"));
    assert_eq!(c.exp, 1_700_000_000);
    assert_eq!(c.exchange_cloud(), Some("GCC High"));
}

#[test]
fn readiness_warnings() {
    // Wrong audience, app-only without the role or a directory role.
    let mut claims = app_only_claims();
    claims["aud"] = json!("https://graph.microsoft.com");
    claims["roles"] = json!(["Mail.Read"]);
    claims["wids"] = json!(["0997a1d0-0d1d-4acb-b408-d5ca73121e90"]);
    let jwt = Jwt::decode(&token(&rs256(), &claims, "")).unwrap();
    let w = jwt.exchange_readiness(at(NOW));
    assert_eq!(
        w,
        [
            Warning::WrongAudience {
                found: vec!["https://graph.microsoft.com".into()]
            },
            Warning::MissingManageAsApp {
                roles: vec!["Mail.Read".into()]
            },
            Warning::NoExchangeDirectoryRole,
        ]
    );
    assert!(w.iter().all(Warning::is_blocking));
    assert!(w[0].to_string().contains("https://outlook.office365.com"));
    assert!(w[1].to_string().contains("Exchange.ManageAsApp"));

    // Every Exchange-capable directory role passes, e.g. Global Reader and Compliance Administrator.
    for wid in [
        "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
        "17315797-102d-40b4-93e0-432062caca18",
    ] {
        let mut claims = app_only_claims();
        claims["wids"] = json!([wid]);
        let jwt = Jwt::decode(&token(&rs256(), &claims, "")).unwrap();
        assert!(jwt.exchange_readiness(at(NOW)).is_empty(), "{wid}");
    }

    // Delegated without the scope.
    let mut claims = delegated_claims();
    claims["scp"] = json!("User.Read");
    let jwt = Jwt::decode(&token(&rs256(), &claims, "")).unwrap();
    assert_eq!(
        jwt.exchange_readiness(at(NOW)),
        [Warning::MissingRemotePowerShellScope {
            scopes: vec!["User.Read".into()]
        }]
    );

    // Expiry: soon, then expired, and not yet valid.
    let jwt = Jwt::decode(&token(&rs256(), &delegated_claims(), "")).unwrap();
    let soon = at(NOW + 4000 - 120);
    assert_eq!(
        jwt.exchange_readiness(soon),
        [Warning::ExpiresSoon { seconds_left: 120 }]
    );
    assert!(!Warning::ExpiresSoon { seconds_left: 120 }.is_blocking());
    assert_eq!(
        jwt.exchange_readiness(at(NOW + 4000 - EXPIRY_MARGIN_SECS as u64 - 1)),
        []
    );
    let w = jwt.exchange_readiness(at(NOW + 4000 + 3700));
    assert_eq!(w, [Warning::Expired { seconds_ago: 3700 }]);
    assert_eq!(w[0].to_string(), "token expired 1h01m ago");
    assert_eq!(
        jwt.exchange_readiness(at(NOW - 100)),
        [Warning::NotYetValid { seconds_until: 40 }]
    );
}

#[test]
fn decode_errors() {
    let good_claims = URL_SAFE_NO_PAD.encode(app_only_claims().to_string());
    let header = URL_SAFE_NO_PAD.encode(rs256().to_string());
    let cases: Vec<(String, JwtError)> = vec![
        (String::new(), JwtError::Empty),
        ("Bearer   ".into(), JwtError::Empty),
        ("abc".into(), JwtError::SegmentCount { found: 1 }),
        ("a.b".into(), JwtError::SegmentCount { found: 2 }),
        ("a.b.c.d".into(), JwtError::SegmentCount { found: 4 }),
        ("a.b.c.d.e".into(), JwtError::Encrypted),
        (
            format!("{header}.{good_claims}.not base64!"),
            JwtError::Base64 {
                segment: Segment::Signature,
                reason: String::new(),
            },
        ),
        (
            format!("%%%.{good_claims}."),
            JwtError::Base64 {
                segment: Segment::Header,
                reason: String::new(),
            },
        ),
        (
            format!("{header}.{}.", URL_SAFE_NO_PAD.encode("{not json")),
            JwtError::Json {
                segment: Segment::Claims,
                reason: String::new(),
            },
        ),
        (
            format!("{header}.{}.", URL_SAFE_NO_PAD.encode("[1,2]")),
            JwtError::Json {
                segment: Segment::Claims,
                reason: String::new(),
            },
        ),
        (
            token(&rs256(), &json!({"aud": "x"}), ""),
            JwtError::MissingClaim { claim: "exp" },
        ),
        (
            token(&rs256(), &json!({"exp": "soon"}), ""),
            JwtError::ClaimType {
                claim: "exp",
                expected: "",
            },
        ),
        (
            token(&rs256(), &json!({"exp": 1, "aud": 5}), ""),
            JwtError::ClaimType {
                claim: "aud",
                expected: "",
            },
        ),
        (
            token(&rs256(), &json!({"exp": 1, "roles": "x"}), ""),
            JwtError::ClaimType {
                claim: "roles",
                expected: "",
            },
        ),
        (
            token(&rs256(), &json!({"exp": 1, "tid": 7}), ""),
            JwtError::ClaimType {
                claim: "tid",
                expected: "",
            },
        ),
        (
            "x".repeat(MAX_TOKEN_LEN + 1),
            JwtError::TooLong {
                len: MAX_TOKEN_LEN + 1,
                max: MAX_TOKEN_LEN,
            },
        ),
    ];
    for (input, expected) in cases {
        let err = Jwt::decode(&input).expect_err(&input[..input.len().min(40)]);
        // Compare variants and the fields that are stable; reasons come from the decoders.
        let same = match (&err, &expected) {
            (JwtError::Base64 { segment: a, .. }, JwtError::Base64 { segment: b, .. }) => a == b,
            (JwtError::Json { segment: a, .. }, JwtError::Json { segment: b, .. }) => a == b,
            (JwtError::ClaimType { claim: a, .. }, JwtError::ClaimType { claim: b, .. }) => a == b,
            (a, b) => a == b,
        };
        assert!(same, "{input:.40}: got {err:?}, expected {expected:?}");
        let msg = err.to_string();
        assert!(msg.starts_with(|c: char| c.is_lowercase()), "{msg}");
    }
}

#[test]
fn debug_never_shows_the_signature_or_token() {
    let raw = token(&rs256(), &app_only_claims(), "U0VDUkVUU0lHTkFUVVJF");
    let jwt = Jwt::decode(&raw).unwrap();
    let debug = format!("{jwt:?}");
    assert!(!debug.contains("U0VDUkVUU0lHTkFUVVJF"), "{debug}");
    assert!(!debug.contains(&raw[..20]), "{debug}");
    assert!(debug.contains("Exchange.ManageAsApp"), "{debug}");
    assert!(
        debug.contains("RS256") && !debug.contains("kWbkaa6"),
        "claims and alg only: {debug}"
    );
}

#[test]
fn minted_tokens_decode_to_the_same_claims() {
    let mut claims = Claims {
        aud: vec!["https://outlook.office365.com".into()],
        tid: Some("t".into()),
        appid: Some("app".into()),
        roles: vec![rps_session::jwt::MANAGE_AS_APP_ROLE.into()],
        wids: vec!["29232cdf-9323-42fd-ade2-1d097af3e4de".into()],
        exp: (NOW + 3600) as i64,
        nbf: Some(NOW as i64),
        iat: Some(NOW as i64),
        ..Claims::default()
    };
    claims
        .extra
        .insert("custom".into(), json!({"nested": [1, 2]}));
    let raw = Jwt::mint_unsigned(&claims);
    assert!(raw.ends_with('.'), "unsigned: empty signature");
    let jwt = Jwt::decode(&raw).unwrap();
    assert_eq!(jwt.alg(), Some("none"));
    assert_eq!(jwt.claims(), &claims);
    assert!(jwt.exchange_readiness(at(NOW)).is_empty());
    // `appid` is written as such; a token with only `azp` still fills it.
    assert_eq!(jwt.claims().to_json().get("appid"), Some(&json!("app")));
}

proptest! {
    #[test]
    fn arbitrary_input_never_panics(s in any::<String>()) {
        let _ = Jwt::decode(&s);
    }

    #[test]
    fn arbitrary_dotted_base64_never_panics(a in "[A-Za-z0-9_-]{0,40}", b in "[A-Za-z0-9_=-]{0,80}", c in "[A-Za-z0-9_-]{0,10}") {
        let _ = Jwt::decode(&format!("{a}.{b}.{c}"));
    }

    #[test]
    fn mint_round_trips(
        aud in prop::collection::vec("[a-z:/.]{1,20}", 0..3),
        scp in prop::collection::vec("[A-Za-z.]{1,20}", 0..4),
        roles in prop::collection::vec("[A-Za-z.]{1,20}", 0..3),
        exp in any::<i64>(),
        upn in proptest::option::of("[a-z@.]{1,20}"),
    ) {
        let claims = Claims { aud, scp, roles, exp, upn, ..Claims::default() };
        let jwt = Jwt::decode(&Jwt::mint_unsigned(&claims)).unwrap();
        prop_assert_eq!(jwt.claims(), &claims);
    }
}
