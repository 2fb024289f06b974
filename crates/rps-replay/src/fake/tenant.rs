//! The generated tenant: `n` mailboxes derived from a seed, built one at a time on demand
//! so a listing of 100,000 objects never sits in memory at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rps_psrp::clixml::{Object, Property, Value};
use uuid::Uuid;

use super::catalog::{TenantInfo, View, enum_type_names, enum_value, mvp, mvp_type_names};

/// A small deterministic generator (SplitMix64): the same seed gives the same tenant.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// A float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    fn uuid(&mut self) -> Uuid {
        let hi = u128::from(self.next_u64());
        let lo = u128::from(self.next_u64());
        uuid::Builder::from_random_bytes(((hi << 64) | lo).to_be_bytes()).into_uuid()
    }
}

const FIRST: &[(&str, &str)] = &[
    ("John", "john"),
    ("Mary", "mary"),
    ("Li", "li"),
    ("Åsa", "asa"),
    ("José", "jose"),
    ("Zoë", "zoe"),
    ("Ahmed", "ahmed"),
    ("Yuki", "yuki"),
    ("Olga", "olga"),
    ("Søren", "soren"),
    ("Chloé", "chloe"),
    ("Priya", "priya"),
    ("Noah", "noah"),
    ("Emma", "emma"),
    ("Kenji", "kenji"),
    ("Fatima", "fatima"),
];
const LAST: &[(&str, &str)] = &[
    ("Smith", "smith"),
    ("Garcia", "garcia"),
    ("Müller", "muller"),
    ("O'Brien", "obrien"),
    ("Nguyen", "nguyen"),
    ("Kowalski", "kowalski"),
    ("Tanaka", "tanaka"),
    ("Dubois", "dubois"),
    ("Rossi", "rossi"),
    ("van der Berg", "vanderberg"),
    ("Patel", "patel"),
    ("Ivanova", "ivanova"),
];
const DEPTS: &[&str] = &[
    "Finance",
    "R&D",
    "Sales & Marketing",
    "IT <Ops>",
    "Legal",
    "HR",
    "Support",
    "Engineering",
];
const OFFICES: &[&str] = &["Sydney", "Berlin", "Tokyo", "New York", "São Paulo", ""];
const QUOTAS: &[&str] = &[
    "Unlimited",
    "49 GB (52,613,349,376 bytes)",
    "99 GB (106,300,440,576 bytes)",
    "100 GB (107,374,182,400 bytes)",
];
const SIZES: &[&str] = &[
    "35 MB (36,700,160 bytes)",
    "25 MB (26,214,400 bytes)",
    "150 MB (157,286,400 bytes)",
];
const LANGS: &[&str] = &["en-US", "de-DE", "fr-FR", "ja-JP", "sv-SE", "pt-BR"];

/// The names of one recipient: what `-Identity` matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// `Name` (and `DisplayName`).
    pub name: String,
    /// `Alias`.
    pub alias: String,
    /// `PrimarySmtpAddress`.
    pub smtp: String,
}

/// `RecipientTypeDetails` of a generated mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxKind {
    /// `UserMailbox` (1).
    User,
    /// `SharedMailbox` (4).
    Shared,
    /// `RoomMailbox` (16).
    Room,
}

impl MailboxKind {
    fn of(i: usize) -> Self {
        if i % 11 == 10 {
            MailboxKind::Shared
        } else if i % 23 == 22 {
            MailboxKind::Room
        } else {
            MailboxKind::User
        }
    }

    fn name(self) -> &'static str {
        match self {
            MailboxKind::User => "UserMailbox",
            MailboxKind::Shared => "SharedMailbox",
            MailboxKind::Room => "RoomMailbox",
        }
    }

    fn value(self) -> i64 {
        match self {
            MailboxKind::User => 1,
            MailboxKind::Shared => 4,
            MailboxKind::Room => 16,
        }
    }
}

/// The generated tenant plus the changes made to it (`Set-Mailbox`).
#[derive(Debug, Clone)]
pub struct Tenant {
    info: TenantInfo,
    count: usize,
    seed: u64,
    overrides: HashMap<usize, BTreeMap<String, Value>>,
    adobjectid_tn: Arc<[String]>,
    proxy_tn: Arc<[String]>,
    string_mvp_tn: Arc<[String]>,
    adobjectid_mvp_tn: Arc<[String]>,
    culture_mvp_tn: Arc<[String]>,
}

/// Days since 1970-01-01 to a civil date (proleptic Gregorian).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// An xs:dateTime text for unix seconds plus 100-ns ticks, in UTC.
pub fn datetime_text(secs: i64, ticks: u32) -> String {
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{ticks:07}+00:00",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

impl Tenant {
    /// A tenant of `count` mailboxes from `seed`.
    pub fn new(info: TenantInfo, count: usize, seed: u64) -> Self {
        Tenant {
            info,
            count,
            seed,
            overrides: HashMap::new(),
            adobjectid_tn: vec![
                "Deserialized.Microsoft.Exchange.Data.Directory.ADObjectId".to_owned(),
                "Deserialized.Microsoft.Exchange.Data.ObjectId".to_owned(),
                "Deserialized.System.Object".to_owned(),
            ]
            .into(),
            proxy_tn: {
                let mut v =
                    vec!["Deserialized.Microsoft.Exchange.Data.ProxyAddressCollection".to_owned()];
                v.extend(
                    mvp_type_names("Microsoft.Exchange.Data.ProxyAddress")
                        .iter()
                        .cloned(),
                );
                v.into()
            },
            string_mvp_tn: mvp_type_names("System.String"),
            adobjectid_mvp_tn: mvp_type_names("Microsoft.Exchange.Data.Directory.ADObjectId"),
            culture_mvp_tn: mvp_type_names("System.Globalization.CultureInfo"),
        }
    }

    /// The number of mailboxes.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the tenant has no mailboxes.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The tenant's facts.
    pub fn info(&self) -> &TenantInfo {
        &self.info
    }

    fn rng(&self, i: usize) -> Rng {
        Rng::new(self.seed.wrapping_mul(1_000_003).wrapping_add(i as u64))
    }

    fn domain(&self) -> &str {
        self.info
            .domains
            .first()
            .map_or(self.info.initial_domain.as_str(), String::as_str)
    }

    /// The names of mailbox `i` (cheap: no object is built).
    pub fn names(&self, i: usize) -> Names {
        let mut rng = self.rng(i);
        let (first, fa) = FIRST[rng.below(FIRST.len() as u64) as usize];
        let (last, la) = LAST[rng.below(LAST.len() as u64) as usize];
        let alias = format!("{fa}.{la}{i}");
        let mut name = format!("{first} {last}");
        if i % 7 == 6 {
            name.push_str(&format!(" ({})", DEPTS[i % DEPTS.len()]));
        }
        let smtp = format!("{alias}@{}", self.domain());
        Names { name, alias, smtp }
    }

    /// Finds a mailbox by Name, DisplayName, Alias, PrimarySmtpAddress or any of its
    /// addresses (case-insensitive).
    pub fn find(&self, identity: &str) -> Option<usize> {
        let id = identity.trim();
        let id = id
            .strip_prefix("SMTP:")
            .or_else(|| id.strip_prefix("smtp:"))
            .unwrap_or(id);
        (0..self.count).find(|&i| {
            let n = self.names(i);
            n.name.eq_ignore_ascii_case(id)
                || n.alias.eq_ignore_ascii_case(id)
                || n.smtp.eq_ignore_ascii_case(id)
                || matches!(
                    self.overrides.get(&i).and_then(|o| o.get("DisplayName")),
                    Some(Value::Str(d)) if d.eq_ignore_ascii_case(id)
                )
        })
    }

    /// Records a property change for mailbox `i`.
    pub fn set(&mut self, i: usize, property: &str, value: Value) {
        self.overrides
            .entry(i)
            .or_default()
            .insert(property.to_owned(), value);
    }

    /// Whether the view knows `property` for mailbox objects.
    pub fn settable(&self, view: &View, property: &str) -> Option<String> {
        view.properties
            .iter()
            .find(|p| p.eq_ignore_ascii_case(property))
            .cloned()
    }

    fn adobjectid(&self, rng: &mut Rng, dn: &str, canonical: &str) -> Value {
        let domain = self.info.initial_domain.clone();
        let (parent, name) = canonical.rsplit_once('/').unwrap_or(("", canonical));
        let rdn = dn.split(",OU=").next().unwrap_or(dn);
        let props = vec![
            ("IsDeleted", Value::Bool(false)),
            ("Rdn", Value::Str(rdn.to_owned())),
            ("Parent", Value::Str(parent.to_owned())),
            ("Depth", Value::I32(dn.matches(',').count() as i32 + 1)),
            ("DistinguishedName", Value::Str(dn.to_owned())),
            ("IsRelativeDn", Value::Bool(false)),
            ("DomainId", Value::Str(domain.clone())),
            (
                "PartitionGuid",
                Value::Guid(Uuid::from_u128(0x59ce_2f71_eaa2_4ddf_a4fa_f250_69d0_b324)),
            ),
            ("PartitionFQDN", Value::Str(domain)),
            ("ObjectGuid", Value::Guid(rng.uuid())),
            ("Name", Value::Str(name.to_owned())),
        ];
        Value::object(Object {
            type_names: Some(self.adobjectid_tn.clone()),
            to_string: Some(canonical.to_owned()),
            adapted: props
                .into_iter()
                .map(|(n, v)| Property {
                    name: n.to_owned(),
                    value: v,
                })
                .collect(),
            ..Object::default()
        })
    }

    fn strings(&self, items: Vec<String>) -> Value {
        mvp(
            self.string_mvp_tn.clone(),
            items.into_iter().map(Value::Str).collect(),
        )
    }

    /// Every property of mailbox `i`, by name.
    pub fn properties(&self, i: usize) -> HashMap<&'static str, Value> {
        let n = self.names(i);
        let mut rng = self.rng(i);
        // Skip what names() consumed so the rest of the stream differs.
        rng.next_u64();
        rng.next_u64();
        let kind = MailboxKind::of(i);
        let dept = DEPTS[i % DEPTS.len()];
        let tenant_dom = self.info.initial_domain.clone();
        let ou = format!(
            "{}/{}",
            "NAMPR11A001.PROD.OUTLOOK.COM/Microsoft Exchange Hosted Organizations", tenant_dom
        );
        let rdn_name = format!("{}{}", n.alias.replace('.', ""), i);
        let dn = format!(
            "CN={rdn_name},OU={tenant_dom},OU=Microsoft Exchange Hosted Organizations,DC=NAMPR11A001,DC=PROD,DC=OUTLOOK,DC=COM"
        );
        let canonical = format!("{ou}/{rdn_name}");
        let identity = self.adobjectid(&mut rng, &dn, &canonical);
        let exch_guid = rng.uuid();
        let obj_guid = rng.uuid();
        let ext_id = rng.uuid();
        let created = 1_420_070_400 + rng.below(9 * 365 * 86_400) as i64;
        let changed = created + rng.below(365 * 86_400) as i64;
        let created_t = datetime_text(created, rng.below(10_000_000) as u32);
        let changed_t = datetime_text(changed, rng.below(10_000_000) as u32);
        let db = format!(
            "{}{:02}DB{:03}",
            self.info.database_prefix,
            i % 9,
            rng.below(400)
        );
        let server = format!("{}{:02}", self.info.server, rng.below(64)).to_ascii_lowercase();
        let mut proxies = vec![Value::Str(format!("SMTP:{}", n.smtp))];
        for d in self.info.domains.iter().skip(1) {
            proxies.push(Value::Str(format!("smtp:{}@{d}", n.alias)));
        }
        proxies.push(Value::Str(format!(
            "X500:/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn={}-{}",
            exch_guid.simple(),
            &n.alias[..n.alias.len().min(8)]
        )));
        if i.is_multiple_of(3) {
            proxies.push(Value::Str(format!("SIP:{}", n.smtp)));
        }
        let archive = i.is_multiple_of(4);
        let enum_i32 =
            |t: &str, name: &str, v: i32| enum_value(enum_type_names(t), name, Value::I32(v));
        let rtd = enum_value(
            enum_type_names("Microsoft.Exchange.Data.Directory.Recipient.RecipientTypeDetails"),
            kind.name(),
            Value::I64(kind.value()),
        );
        let mailtip = if i.is_multiple_of(5) {
            Value::Str(format!(
                "Out of office until {}/{}.\nContact {}\tfor urgent matters ✓",
                1 + rng.below(12),
                1 + rng.below(28),
                FIRST[rng.below(FIRST.len() as u64) as usize].0
            ))
        } else {
            Value::Nil
        };
        let last_logon = datetime_text(changed + 86_400, 0);
        let items = rng.below(250_000) as i64;
        let size = rng.below(50_000_000_000);
        let mut p: HashMap<&'static str, Value> = HashMap::with_capacity(128);
        let mut put = |k: &'static str, v: Value| {
            p.insert(k, v);
        };
        put("Database", Value::Str(db.clone()));
        put("DatabaseName", Value::Str(db));
        put("UseDatabaseRetentionDefaults", Value::Bool(true));
        put("RetainDeletedItemsUntilBackup", Value::Bool(false));
        put("DeliverToMailboxAndForward", Value::Bool(rng.chance(0.1)));
        put("LitigationHoldEnabled", Value::Bool(rng.chance(0.15)));
        put("SingleItemRecoveryEnabled", Value::Bool(true));
        put("RetentionHoldEnabled", Value::Bool(false));
        put("RetentionPolicy", Value::Str("Default MRM Policy".into()));
        put("ExchangeGuid", Value::Guid(exch_guid));
        put("MailboxGuid", Value::Guid(exch_guid));
        put(
            "AdminDisplayVersion",
            Value::Str(self.info.admin_display_version.clone()),
        );
        put(
            "ExternalOofOptions",
            enum_i32(
                "Microsoft.Exchange.Data.Directory.Recipient.ExternalOofOptions",
                "External",
                1,
            ),
        );
        put("ForwardingAddress", Value::Nil);
        put("ForwardingSmtpAddress", Value::Nil);
        put("RetainDeletedItemsFor", Value::Duration("P14D".into()));
        put("IsMailboxEnabled", Value::Bool(true));
        put(
            "Languages",
            mvp(
                self.culture_mvp_tn.clone(),
                vec![Value::Str(rng.pick(LANGS).into())],
            ),
        );
        put("ProhibitSendQuota", Value::Str(rng.pick(QUOTAS).into()));
        put(
            "ProhibitSendReceiveQuota",
            Value::Str(rng.pick(QUOTAS).into()),
        );
        put("IssueWarningQuota", Value::Str(rng.pick(QUOTAS).into()));
        put(
            "RecoverableItemsQuota",
            Value::Str("30 GB (32,212,254,720 bytes)".into()),
        );
        put("IsResource", Value::Bool(kind == MailboxKind::Room));
        put("IsShared", Value::Bool(kind == MailboxKind::Shared));
        put(
            "ResourceType",
            if kind == MailboxKind::Room {
                Value::Str("Room".into())
            } else {
                Value::Nil
            },
        );
        put("ServerName", Value::Str(server.clone()));
        put(
            "ServerLegacyDN",
            Value::Str(format!(
                "/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Configuration/cn=Servers/cn={}",
                server.to_ascii_uppercase()
            )),
        );
        put("Office", Value::Str(rng.pick(OFFICES).into()));
        put("UserPrincipalName", Value::Str(n.smtp.clone()));
        put("WindowsLiveID", Value::Str(n.smtp.clone()));
        put(
            "ArchiveGuid",
            Value::Guid(if archive { rng.uuid() } else { Uuid::nil() }),
        );
        put(
            "ArchiveStatus",
            enum_i32(
                "Microsoft.Exchange.Data.Directory.Recipient.ArchiveStatusFlags",
                if archive { "Active" } else { "None" },
                i32::from(archive),
            ),
        );
        put(
            "ArchiveState",
            enum_i32(
                "Microsoft.Exchange.Data.Directory.Recipient.ArchiveState",
                if archive { "Local" } else { "None" },
                i32::from(archive),
            ),
        );
        put("AuditEnabled", Value::Bool(true));
        put("AuditLogAgeLimit", Value::Duration("P90D".into()));
        put("WhenMailboxCreated", Value::DateTime(created_t.clone()));
        put("AccountDisabled", Value::Bool(kind != MailboxKind::User));
        put("IsDirSynced", Value::Bool(rng.chance(0.5)));
        put("Alias", Value::Str(n.alias.clone()));
        put(
            "SamAccountName",
            Value::Str(format!("$K{}", &exch_guid.simple().to_string()[..11]).to_ascii_uppercase()),
        );
        put("OrganizationalUnit", Value::Str(ou));
        put(
            "CustomAttribute1",
            Value::Str(format!("EMP{:06}", 100_000 + i)),
        );
        put("CustomAttribute2", Value::Str(dept.into()));
        put("Department", Value::Str(dept.into()));
        put("DisplayName", Value::Str(n.name.clone()));
        put(
            "FirstName",
            Value::Str(n.name.split(' ').next().unwrap_or_default().to_owned()),
        );
        put(
            "LastName",
            Value::Str(n.name.split_once(' ').map_or("", |x| x.1).to_owned()),
        );
        put("City", Value::Nil);
        put("Company", Value::Str(self.info.name.clone()));
        put("CountryOrRegion", Value::Nil);
        put("Phone", Value::Str(String::new()));
        put("EmailAddresses", mvp(self.proxy_tn.clone(), proxies));
        put(
            "GrantSendOnBehalfTo",
            mvp(self.adobjectid_mvp_tn.clone(), Vec::new()),
        );
        put("ExternalDirectoryObjectId", Value::Str(ext_id.to_string()));
        put(
            "HiddenFromAddressListsEnabled",
            Value::Bool(rng.chance(0.05)),
        );
        put(
            "LegacyExchangeDN",
            Value::Str(format!(
                "/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn={}-{}",
                exch_guid.simple(),
                &n.alias[..n.alias.len().min(8)]
            )),
        );
        put("LinkedMasterAccount", Value::Str(String::new()));
        put("MaxSendSize", Value::Str(rng.pick(SIZES).into()));
        put("MaxReceiveSize", Value::Str(rng.pick(SIZES).into()));
        put("PrimarySmtpAddress", Value::Str(n.smtp.clone()));
        put("WindowsEmailAddress", Value::Str(n.smtp.clone()));
        put(
            "RecipientType",
            enum_i32(
                "Microsoft.Exchange.Data.Directory.Recipient.RecipientType",
                "UserMailbox",
                2,
            ),
        );
        put("RecipientTypeDetails", rtd);
        put("MailTip", mailtip);
        for (k, on) in [
            ("ActiveSyncEnabled", true),
            ("OWAEnabled", true),
            ("OWAforDevicesEnabled", true),
            ("ECPEnabled", true),
            ("PopEnabled", i.is_multiple_of(2)),
            ("ImapEnabled", i.is_multiple_of(2)),
            ("MAPIEnabled", true),
            ("EwsEnabled", true),
            ("UniversalOutlookEnabled", true),
            ("OutlookMobileEnabled", true),
            ("HasActiveSyncDevicePartnership", i.is_multiple_of(3)),
        ] {
            put(k, Value::Bool(on));
        }
        put("SmtpClientAuthenticationDisabled", Value::Nil);
        // Statistics.
        put("DeletedItemCount", Value::I64(items / 20));
        put("ItemCount", Value::I64(items));
        put("LastLogoffTime", Value::DateTime(last_logon.clone()));
        put("LastLogonTime", Value::DateTime(last_logon));
        put(
            "MailboxType",
            enum_i32("Microsoft.Exchange.Data.StoreMailboxType", "Private", 0),
        );
        put(
            "MailboxTypeDetail",
            enum_i32(
                "Microsoft.Exchange.Data.StoreMailboxTypeDetail",
                kind.name(),
                kind.value() as i32,
            ),
        );
        put("OwnerADGuid", Value::Guid(obj_guid));
        put(
            "StorageLimitStatus",
            enum_i32(
                "Microsoft.Exchange.Data.Mapi.StorageLimitStatus",
                "BelowLimit",
                1,
            ),
        );
        put("TotalItemSize", Value::Str(byte_quantity(size)));
        put("TotalDeletedItemSize", Value::Str(byte_quantity(size / 20)));
        put("IsArchiveMailbox", Value::Bool(false));
        // Common ADObject tail.
        put("Identity", identity.clone());
        put("Id", identity);
        put("IsValid", Value::Bool(true));
        put("ExchangeVersion", Value::Str("0.20 (15.0.0.0)".into()));
        put("Name", Value::Str(n.name.clone()));
        put("DistinguishedName", Value::Str(dn));
        put("Guid", Value::Guid(obj_guid));
        put(
            "ObjectCategory",
            Value::Str("NAMPR11A001.PROD.OUTLOOK.COM/Configuration/Schema/Person".into()),
        );
        put(
            "ObjectClass",
            self.strings(
                ["top", "person", "organizationalPerson", "user"]
                    .map(String::from)
                    .to_vec(),
            ),
        );
        put("WhenChanged", Value::DateTime(changed_t.clone()));
        put("WhenCreated", Value::DateTime(created_t.clone()));
        put("WhenChangedUTC", Value::DateTime(changed_t));
        put("WhenCreatedUTC", Value::DateTime(created_t));
        put(
            "OriginatingServer",
            Value::Str(self.info.domain_controller.clone()),
        );
        put(
            "ObjectState",
            enum_i32("Microsoft.Exchange.Data.ObjectState", "Unchanged", 1),
        );
        if let Some(o) = self.overrides.get(&i) {
            for (k, v) in o {
                if let Some(slot) = p.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(k)) {
                    *slot.1 = v.clone();
                }
            }
        }
        p
    }

    /// Mailbox `i` shaped by `view`.
    pub fn object(&self, i: usize, view: &View, type_names: &Arc<[String]>) -> Value {
        let mut props = self.properties(i);
        let to_string = match &view.to_string {
            Some(p) => props
                .get(p.as_str())
                .and_then(Value::as_str)
                .map(str::to_owned),
            None => props.get("Name").and_then(Value::as_str).map(str::to_owned),
        };
        let adapted = view
            .properties
            .iter()
            .map(|name| Property {
                name: name.clone(),
                value: props.remove(name.as_str()).unwrap_or(Value::Nil),
            })
            .collect();
        Value::object(Object {
            type_names: Some(type_names.clone()),
            to_string,
            adapted,
            ..Object::default()
        })
    }
}

/// `1.234 GB (1,325,000,000 bytes)`, as Exchange prints a ByteQuantifiedSize.
pub fn byte_quantity(bytes: u64) -> String {
    let units = [
        ("B", 1u64),
        ("KB", 1 << 10),
        ("MB", 1 << 20),
        ("GB", 1 << 30),
    ];
    let (unit, div) = units
        .iter()
        .rev()
        .find(|(_, d)| bytes >= *d)
        .copied()
        .unwrap_or(("B", 1));
    let mut digits = bytes.to_string();
    let mut grouped = String::new();
    while digits.len() > 3 {
        let tail = digits.split_off(digits.len() - 3);
        grouped = format!(",{tail}{grouped}");
    }
    grouped = format!("{digits}{grouped}");
    if div == 1 {
        format!("{bytes} B ({grouped} bytes)")
    } else {
        format!("{:.3} {unit} ({grouped} bytes)", bytes as f64 / div as f64)
    }
}
