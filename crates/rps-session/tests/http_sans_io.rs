//! Sans-IO HTTP pieces: auth header bytes, profiles, cookies, redirect decisions, redaction.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rps_session::http::auth::{
    basic_authorization, ensure_secure_transport, oauth_basic_authorization,
};
use rps_session::http::cookie::CookieError;
use rps_session::http::profile::{ExchangeOnline, OnPremisesExchange, WinRm, resource_uri};
use rps_session::http::{
    Cloud, ConnectionProfile, CookieJar, Credentials, HttpRequest, RedirectError, RedirectPolicy,
    Secret,
};
use rps_session::token::{AccessToken, StaticToken};
use url::Url;

const TENANT: &str = "00000000-1111-2222-3333-444444444444";

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

#[test]
fn oauth_as_basic_header_bytes_are_exact() {
    let token = AccessToken::new("fake.access.token", SystemTime::now());
    let user = rps_session::http::auth::app_only_user(TENANT);
    assert_eq!(user, "OAuthUser@00000000-1111-2222-3333-444444444444");
    let v = oauth_basic_authorization(&user, &token);
    // base64("OAuthUser@00000000-1111-2222-3333-444444444444:Bearer fake.access.token")
    assert_eq!(
        v.expose(),
        "Basic T0F1dGhVc2VyQDAwMDAwMDAwLTExMTEtMjIyMi0zMzMzLTQ0NDQ0NDQ0NDQ0NDpCZWFyZXIgZmFrZS5hY2Nlc3MudG9rZW4="
    );
    let plain = basic_authorization("alice", &Secret::new("pw"));
    assert_eq!(plain.expose(), "Basic YWxpY2U6cHc=");
}

#[tokio::test]
async fn credentials_build_header_from_provider() {
    let provider = Arc::new(StaticToken::new("fake.access.token"));
    let creds = Credentials::app_only(TENANT, provider.clone());
    assert_eq!(
        creds.user(),
        "OAuthUser@00000000-1111-2222-3333-444444444444"
    );
    let v = creds.authorization().await.unwrap();
    assert!(v.expose().starts_with("Basic T0F1dGhVc2VyQDAw"));
    let d = Credentials::delegated("admin@contoso.onmicrosoft.com", provider);
    assert_eq!(d.user(), "admin@contoso.onmicrosoft.com");
    assert!(d.is_token());
}

#[test]
fn exchange_online_urls_for_each_option() {
    let base = "https://outlook.office365.com/PowerShell-LiveId?BasicAuthToOAuthConversion=true";
    let e = ExchangeOnline::app_only(TENANT).endpoint().unwrap();
    assert_eq!(e.url.as_str(), base);
    assert_eq!(e.configuration, "Microsoft.Exchange");
    assert!(e.allow_redirection);
    assert_eq!(
        e.resource_uri(),
        "http://schemas.microsoft.com/powershell/Microsoft.Exchange"
    );

    let e = ExchangeOnline::app_only(TENANT)
        .delegated_org("fabrikam.onmicrosoft.com")
        .endpoint()
        .unwrap();
    assert_eq!(
        e.url.as_str(),
        format!("{base}&DelegatedOrg=fabrikam.onmicrosoft.com")
    );

    let e = ExchangeOnline::delegated("admin@contoso.com")
        .anchor_mailbox("user@contoso.com")
        .endpoint()
        .unwrap();
    assert_eq!(e.url.as_str(), format!("{base}&email=user%40contoso.com"));

    let e = ExchangeOnline::delegated("admin@contoso.com")
        .delegated_org("fabrikam.onmicrosoft.com")
        .anchor_mailbox("user@fabrikam.com")
        .endpoint()
        .unwrap();
    assert_eq!(
        e.url.as_str(),
        format!("{base}&DelegatedOrg=fabrikam.onmicrosoft.com&email=user%40fabrikam.com")
    );

    for (cloud, host) in [
        (Cloud::Worldwide, "outlook.office365.com"),
        (Cloud::GccHigh, "outlook.office365.us"),
        (Cloud::DoD, "webmail.apps.mil"),
        (Cloud::China, "partner.outlook.cn"),
    ] {
        let e = ExchangeOnline::app_only(TENANT)
            .cloud(cloud)
            .endpoint()
            .unwrap();
        assert_eq!(
            e.url.as_str(),
            format!("https://{host}/PowerShell-LiveId?BasicAuthToOAuthConversion=true")
        );
    }
    for (cloud, host) in [
        (Cloud::Worldwide, "ps.compliance.protection.outlook.com"),
        (Cloud::GccHigh, "ps.compliance.protection.office365.us"),
        (Cloud::DoD, "l5.ps.compliance.protection.office365.us"),
        (Cloud::China, "ps.compliance.protection.partner.outlook.cn"),
    ] {
        let e = ExchangeOnline::delegated("a@b.c")
            .cloud(cloud)
            .security_compliance()
            .endpoint()
            .unwrap();
        assert_eq!(
            e.url.as_str(),
            format!("https://{host}/PowerShell-LiveId?BasicAuthToOAuthConversion=true")
        );
    }
    let p = ExchangeOnline::app_only(TENANT);
    assert_eq!(p.user(), format!("OAuthUser@{TENANT}"));
    assert_eq!(p.scope(), "https://outlook.office365.com/.default");
    assert_eq!(ExchangeOnline::delegated("u@x.com").user(), "u@x.com");
}

#[test]
fn other_profiles() {
    let e = OnPremisesExchange::new("mail.contoso.com")
        .endpoint()
        .unwrap();
    assert_eq!(e.url.as_str(), "https://mail.contoso.com/PowerShell");
    assert_eq!(e.configuration, "Microsoft.Exchange");
    assert!(!e.allow_redirection);

    let e = WinRm::new("srv01").endpoint().unwrap();
    assert_eq!(e.url.as_str(), "https://srv01:5986/wsman");
    assert_eq!(e.configuration, "Microsoft.PowerShell");
    assert_eq!(
        e.resource_uri(),
        "http://schemas.microsoft.com/powershell/Microsoft.PowerShell"
    );
    let e = WinRm::new("srv01")
        .http()
        .configuration("JEA.Maintenance")
        .endpoint()
        .unwrap();
    assert_eq!(e.url.as_str(), "http://srv01:5985/wsman");
    assert_eq!(
        e.resource_uri(),
        "http://schemas.microsoft.com/powershell/JEA.Maintenance"
    );
    let e = WinRm::new("::1").port(1234).endpoint().unwrap();
    assert_eq!(e.url.as_str(), "https://[::1]:1234/wsman");
    assert!(WinRm::new("bad/host").endpoint().is_err());
    assert!(OnPremisesExchange::new("").endpoint().is_err());

    let p: ConnectionProfile = ExchangeOnline::app_only(TENANT).into();
    assert_eq!(
        p.endpoint().unwrap().url.host_str(),
        Some("outlook.office365.com")
    );
    assert_eq!(
        resource_uri("X"),
        "http://schemas.microsoft.com/powershell/X"
    );
}

#[test]
fn winrm_request_defaults() {
    let r = HttpRequest::winrm(url("https://h/wsman"), "<s/>");
    assert_eq!(
        r.headers.get("content-type"),
        Some("application/soap+xml;charset=UTF-8")
    );
    assert_eq!(r.headers.get("Accept-Encoding"), Some("identity"));
    assert_eq!(
        r.headers.get("User-Agent"),
        Some(concat!("rps/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(&r.body[..], b"<s/>");
}

#[test]
fn plain_http_refused_unless_opted_in() {
    let err = ensure_secure_transport(&url("http://srv:5985/wsman"), false).unwrap_err();
    assert!(err.to_string().contains("srv:5985"), "{err}");
    assert!(ensure_secure_transport(&url("http://srv:5985/wsman"), true).is_ok());
    assert!(ensure_secure_transport(&url("https://srv/wsman"), false).is_ok());
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn cookie_path_is_case_insensitive_and_host_bound() {
    let mut jar = CookieJar::new();
    let now = at(1_700_000_000);
    let first =
        url("https://outlook.office365.com/PowerShell-LiveId?BasicAuthToOAuthConversion=true");
    jar.store(
        &first,
        "MS-WSMAN=affinity-value; path=/powershell-liveid; secure; HttpOnly",
        now,
    )
    .unwrap();
    assert_eq!(
        jar.cookie_header(&first, now).as_deref(),
        Some("MS-WSMAN=affinity-value")
    );
    // Other path, other host, plain http: nothing.
    assert_eq!(
        jar.cookie_header(&url("https://outlook.office365.com/other"), now),
        None
    );
    assert_eq!(
        jar.cookie_header(
            &url("https://pod.outlook.office365.com/PowerShell-LiveId"),
            now
        ),
        None
    );
    assert_eq!(
        jar.cookie_header(&url("http://outlook.office365.com/PowerShell-LiveId"), now),
        None
    );
    let c = jar.get(&first, "MS-WSMAN", now).unwrap();
    assert!(c.secure && c.http_only && c.host_only);
}

#[test]
fn cookie_domain_expiry_and_replacement() {
    let mut jar = CookieJar::new();
    let now = at(1_700_000_000);
    let u = url("https://a.contoso.com/x/y");
    jar.store(&u, "D=1; Domain=.contoso.com; Path=/", now)
        .unwrap();
    jar.store(&u, "M=2; Max-Age=60", now).unwrap();
    jar.store(&u, "E=3; Expires=Wed, 21 Oct 2015 07:28:00 GMT", now)
        .unwrap();
    jar.store(&u, "F=4; Expires=Tue, 14 Nov 2023 22:14:00 GMT", now)
        .unwrap();
    assert!(matches!(
        jar.store(&u, "X=1; Domain=evil.com", now),
        Err(CookieError::DomainMismatch { .. })
    ));
    assert!(jar.store(&u, "novalue", now).is_err());
    // D goes to siblings; M has default path /x.
    assert_eq!(
        jar.cookie_header(&url("https://b.contoso.com/"), now)
            .as_deref(),
        Some("D=1")
    );
    assert_eq!(jar.cookie_header(&u, now).as_deref(), Some("M=2; F=4; D=1"));
    // Expired E was never stored; M (60 s) and F (40 s) lapse in turn.
    assert_eq!(
        jar.cookie_header(&u, now + Duration::from_secs(61))
            .as_deref(),
        Some("D=1")
    );
    assert_eq!(
        jar.cookie_header(&u, at(1_700_000_041)).as_deref(),
        Some("M=2; D=1")
    );
    // Replacement and deletion.
    jar.store(&u, "D=9; Domain=contoso.com; Path=/", now)
        .unwrap();
    assert_eq!(
        jar.cookie_header(&url("https://c.contoso.com/"), now)
            .as_deref(),
        Some("D=9")
    );
    jar.store(&u, "D=; Domain=contoso.com; Path=/; Max-Age=0", now)
        .unwrap();
    assert_eq!(jar.cookie_header(&url("https://c.contoso.com/"), now), None);
    jar.remove_expired(now + Duration::from_secs(3600));
    assert_eq!(jar.len(), 0);
}

#[test]
fn redirect_policy_decisions() {
    let from =
        url("https://outlook.office365.com/PowerShell-LiveId?BasicAuthToOAuthConversion=true");
    let none = RedirectPolicy::none();
    assert!(matches!(
        none.next_url(
            &from,
            302,
            Some("https://pod.outlook.com/PowerShell-LiveId"),
            std::slice::from_ref(&from)
        ),
        Err(RedirectError::NotAllowed { status: 302, .. })
    ));
    let p = RedirectPolicy::follow();
    let next = p
        .next_url(
            &from,
            302,
            Some("/PowerShell-LiveId?PSVersion=5.1"),
            std::slice::from_ref(&from),
        )
        .unwrap();
    assert_eq!(
        next.as_str(),
        "https://outlook.office365.com/PowerShell-LiveId?PSVersion=5.1"
    );
    assert!(matches!(
        p.next_url(
            &from,
            301,
            Some("http://outlook.office365.com/x"),
            std::slice::from_ref(&from)
        ),
        Err(RedirectError::Downgrade { .. })
    ));
    assert!(matches!(
        p.next_url(&from, 307, None, std::slice::from_ref(&from)),
        Err(RedirectError::MissingLocation { status: 307, .. })
    ));
    assert!(matches!(
        p.next_url(&from, 308, Some("ftp://x/"), std::slice::from_ref(&from)),
        Err(RedirectError::InvalidLocation { .. })
    ));
    let chain: Vec<Url> = (0..6)
        .map(|i| url(&format!("https://h{i}.example/")))
        .collect();
    match p.next_url(&chain[5], 302, Some("https://h6.example/"), &chain) {
        Err(RedirectError::Limit { hosts }) => assert_eq!(hosts.len(), 7),
        other => panic!("{other:?}"),
    }
    for s in [301, 302, 303, 307, 308] {
        assert!(RedirectPolicy::is_redirect(s));
    }
    assert!(!RedirectPolicy::is_redirect(304));
}

#[test]
fn debug_output_never_shows_secrets() {
    let secret = Secret::new("hunter2-password");
    assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
    assert_eq!(format!("{secret}"), "<redacted>");

    let creds = Credentials::basic("alice", "hunter2-password");
    let token = Arc::new(StaticToken::new("eyJfake.token.value"));
    let oauth = Credentials::app_only(TENANT, token.clone());
    let at = AccessToken::new("eyJfake.token.value", SystemTime::now());
    let mut req = HttpRequest::winrm(
        url("https://h/wsman?email=x"),
        "body-secret-hunter2-password",
    );
    req.headers
        .insert("Authorization", "Basic aHVudGVyMi1wYXNzd29yZA==");
    req.headers.insert("Cookie", "MS-WSMAN=cookie-value-zzz");
    let mut jar = CookieJar::new();
    jar.store(
        &url("https://h/"),
        "MS-WSMAN=cookie-value-zzz",
        SystemTime::now(),
    )
    .unwrap();

    let mut resp_headers = rps_session::http::Headers::new();
    resp_headers.append("Set-Cookie", "MS-WSMAN=cookie-value-zzz; path=/");
    resp_headers.append("Content-Type", "text/plain");
    let resp = rps_session::http::HttpResponse {
        status: 200,
        headers: resp_headers,
        body: bytes::Bytes::from_static(b"hunter2 in a body"),
        url: url("https://h/?email=hunter2"),
    };
    let cookie = jar.iter().next().unwrap().clone();
    let outputs = [
        format!("{resp:?}"),
        format!("{cookie:?}"),
        format!("{creds:?}"),
        format!("{oauth:?}"),
        format!("{token:?}"),
        format!("{at:?}"),
        format!("{req:?}"),
        format!("{:?}", req.headers),
        format!("{jar:?}"),
        format!("{jar}"),
    ];
    for out in outputs {
        for needle in ["hunter2", "eyJfake", "aHVudGVy", "cookie-value-zzz"] {
            assert!(!out.contains(needle), "{needle} leaked in {out}");
        }
    }
}
