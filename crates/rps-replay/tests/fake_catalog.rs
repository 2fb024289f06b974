//! The catalog fixture and the generated tenant, without any network.

use std::sync::Arc;

use rps_psrp::clixml::{ObjectBase, Value};
use rps_replay::fake::catalog::CmdletSpec;
use rps_replay::fake::tenant::{Tenant, byte_quantity, datetime_text};
use rps_replay::fake::{Catalog, CatalogError};

#[test]
fn builtin_catalog_loads_and_is_consistent() {
    let c = Catalog::builtin().unwrap();
    for name in [
        "Get-Mailbox",
        "Get-Recipient",
        "Get-CASMailbox",
        "Get-MailboxStatistics",
        "Get-User",
        "Set-Mailbox",
        "Get-AcceptedDomain",
        "Get-OrganizationConfig",
    ] {
        assert!(c.cmdlet(&name.to_lowercase()).is_some(), "{name}");
    }
    assert!(c.cmdlet("Get-Nothing").is_none());
    for view in c.views.values() {
        assert_eq!(
            view.type_names.last().unwrap(),
            "Deserialized.System.Object"
        );
        assert!(view.type_names[0].starts_with("Deserialized.Microsoft.Exchange."));
    }
    let domains = &c.objects["AcceptedDomain"];
    let dt = domains[0].as_object().unwrap().get("DomainType").unwrap();
    assert_eq!(dt.as_i64(), Some(0));
    assert_eq!(
        dt.as_object().unwrap().to_string.as_deref(),
        Some("Authoritative")
    );
    assert!(matches!(
        c.cmdlet("Get-Mailbox").unwrap().1,
        CmdletSpec::Recipients { .. }
    ));
}

#[test]
fn bad_catalogs_are_typed_errors() {
    assert!(matches!(
        Catalog::from_json("{"),
        Err(CatalogError::Json(_))
    ));
    let dangling = rps_replay::fake::catalog::BUILTIN_CATALOG
        .replace("\"objects\": \"RemoteDomain\"", "\"objects\": \"Nowhere\"");
    assert!(matches!(
        Catalog::from_json(&dangling),
        Err(CatalogError::Dangling { .. })
    ));
    let bad_value = rps_replay::fake::catalog::BUILTIN_CATALOG
        .replace("\"dt\": \"2019-03-14T09:12:44Z\"", "\"weird\": 1");
    assert!(matches!(
        Catalog::from_json(&bad_value),
        Err(CatalogError::Value { .. })
    ));
}

#[test]
fn tenant_is_deterministic_and_shaped() {
    let c = Catalog::builtin().unwrap();
    let view = c.views["Mailbox"].clone();
    let tn: Arc<[String]> = view.type_names.clone().into();
    let a = Tenant::new(c.tenant.clone(), 100, 42);
    let b = Tenant::new(c.tenant.clone(), 100, 42);
    let other = Tenant::new(c.tenant.clone(), 100, 43);
    assert_eq!(a.object(7, &view, &tn), b.object(7, &view, &tn));
    assert_ne!(a.object(7, &view, &tn), other.object(7, &view, &tn));
    let m = a.object(22, &view, &tn);
    let o = m.as_object().unwrap();
    assert_eq!(o.adapted.len(), view.properties.len());
    // Every 23rd mailbox is a room, every 11th shared.
    let rtd = o.get("RecipientTypeDetails").unwrap();
    assert_eq!(rtd.as_i64(), Some(16));
    assert_eq!(
        rtd.as_object().unwrap().to_string.as_deref(),
        Some("RoomMailbox")
    );
    // Identity and Id are the same object (a <Ref> on the wire).
    match (o.get("Identity"), o.get("Id")) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => assert!(Arc::ptr_eq(x, y)),
        other => panic!("{other:?}"),
    }
    match &o.get("EmailAddresses").unwrap().as_object().unwrap().base {
        ObjectBase::List(_, items) => assert!(items.len() >= 3),
        other => panic!("{other:?}"),
    }
    // Identity lookups.
    let names = a.names(5);
    assert_eq!(a.find(&names.alias.to_uppercase()), Some(5));
    assert_eq!(a.find(&format!("smtp:{}", names.smtp)), Some(5));
    assert_eq!(a.find("nobody"), None);
    // The whole CLIXML serializes.
    let xml = rps_psrp::clixml::to_string(&m);
    assert!(xml.contains("<TN RefId="));
    assert!(xml.contains("Deserialized.Microsoft.Exchange.Data.Directory.Management.Mailbox"));
}

#[test]
fn value_text_helpers() {
    assert_eq!(datetime_text(0, 0), "1970-01-01T00:00:00.0000000+00:00");
    assert_eq!(
        datetime_text(951_782_400, 5),
        "2000-02-29T00:00:00.0000005+00:00"
    );
    assert_eq!(byte_quantity(0), "0 B (0 bytes)");
    assert_eq!(
        byte_quantity(2_147_483_648),
        "2.000 GB (2,147,483,648 bytes)"
    );
    assert_eq!(byte_quantity(1536), "1.500 KB (1,536 bytes)");
}

#[test]
fn command_metadata_for_implicit_remoting() {
    use rps_psrp::records::CommandMetadata;
    use rps_replay::fake::cmdlets::{command_metadata, wildcard_match};
    assert!(wildcard_match("get-*box", "Get-Mailbox"));
    assert!(wildcard_match("*", "Set-Mailbox"));
    assert!(wildcard_match("Get-?ser", "Get-User"));
    assert!(!wildcard_match("Get-*", "Set-Mailbox"));
    let c = Catalog::builtin().unwrap();
    let out = command_metadata(&c, &["Get-Mail*".to_owned(), "Set-Mailbox".to_owned()]);
    let count = out[0].as_object().unwrap().get("Count").unwrap().as_i64();
    assert_eq!(count, Some(3)); // Get-Mailbox, Get-MailboxStatistics, Set-Mailbox
    assert_eq!(out.len(), 4);
    let names: Vec<String> = out[1..]
        .iter()
        .map(|v| CommandMetadata::from_value(v).unwrap().name)
        .collect();
    assert_eq!(
        names,
        ["Get-Mailbox", "Get-MailboxStatistics", "Set-Mailbox"]
    );
    let set = CommandMetadata::from_value(&out[3]).unwrap();
    assert!(
        set.parameters
            .iter()
            .any(|p| p.name == "WhatIf" && p.switch_parameter)
    );
    assert!(set.parameters.iter().any(|p| p.name == "CustomAttribute1"));
}
