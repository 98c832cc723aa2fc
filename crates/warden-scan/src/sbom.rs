//! A software bill of materials for a function package: its [`Inventory`] as CycloneDX 1.5
//! JSON (<https://cyclonedx.org/docs/1.5/json/>), each package identified by its package
//! URL (<https://github.com/package-url/purl-spec>).
//!
//! Local packages (workspace members, path dependencies) are listed without a package
//! URL: they are not the registry package of the same name.

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::{Ecosystem, Inventory, Package};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Bom<'a> {
    bom_format: &'static str,
    spec_version: &'static str,
    serial_number: String,
    version: u32,
    metadata: Metadata<'a>,
    components: Vec<Component<'a>>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    timestamp: String,
    component: Component<'a>,
}

#[derive(Serialize)]
struct Component<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "bom-ref")]
    bom_ref: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purl: Option<String>,
}

/// Percent-encodes a purl component, keeping only the characters the purl spec never
/// needs encoded.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The package URL of a registry package: `pkg:pypi/jinja2@2.10`,
/// `pkg:npm/%40scope/name@1.0.0`, `pkg:cargo/smallvec@1.6.0`,
/// `pkg:golang/github.com/x/y@v1.2.3`.
pub fn purl(package: &Package) -> String {
    // Namespace segments and the name are encoded one by one; `/` separates them.
    let path: Vec<String> = match package.ecosystem {
        Ecosystem::Npm | Ecosystem::Go => package.name.split('/').map(encode).collect(),
        Ecosystem::PyPi | Ecosystem::CratesIo => vec![encode(&package.name)],
    };
    format!(
        "pkg:{}/{}@{}",
        package.ecosystem.purl_type(),
        path.join("/"),
        encode(&package.version)
    )
}

fn component(package: &Package) -> Component<'_> {
    // CycloneDX puts an npm scope in `group`, as npm's own SBOM tooling does.
    let (group, name) = match package.name.split_once('/') {
        Some((scope, name)) if package.ecosystem == Ecosystem::Npm && scope.starts_with('@') => {
            (Some(scope), name)
        }
        _ => (None, package.name.as_str()),
    };
    let (bom_ref, purl) = if package.local {
        let id = format!(
            "local:{}/{}@{}",
            package.ecosystem.purl_type(),
            package.name,
            package.version
        );
        (id, None)
    } else {
        let purl = purl(package);
        (purl.clone(), Some(purl))
    };
    Component {
        kind: "library",
        bom_ref,
        group,
        name,
        version: Some(&package.version),
        purl,
    }
}

/// The inventory as a CycloneDX 1.5 document describing `component_name` (the function
/// or layer), with a fresh serial number and the current time.
pub fn cyclonedx(inventory: &Inventory, component_name: &str) -> serde_json::Value {
    cyclonedx_at(
        inventory,
        component_name,
        uuid::Uuid::new_v4(),
        OffsetDateTime::now_utc(),
    )
}

fn cyclonedx_at(
    inventory: &Inventory,
    component_name: &str,
    serial: uuid::Uuid,
    at: OffsetDateTime,
) -> serde_json::Value {
    let bom = Bom {
        bom_format: "CycloneDX",
        spec_version: "1.5",
        serial_number: format!("urn:uuid:{serial}"),
        version: 1,
        metadata: Metadata {
            // RFC 3339 formatting of a UTC time cannot fail; an empty string would only
            // make the document invalid, not wrong.
            timestamp: at.format(&Rfc3339).unwrap_or_default(),
            component: Component {
                kind: "application",
                bom_ref: format!("function:{component_name}"),
                group: None,
                name: component_name,
                version: None,
                purl: None,
            },
        },
        components: inventory.packages.iter().map(component).collect(),
    };
    serde_json::to_value(&bom).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn package(ecosystem: Ecosystem, name: &str, version: &str, local: bool) -> Package {
        Package {
            ecosystem,
            name: name.into(),
            version: version.into(),
            local,
            paths: vec!["x".into()],
        }
    }

    #[test]
    fn purls_per_ecosystem() {
        let cases = [
            (Ecosystem::PyPi, "jinja2", "2.10", "pkg:pypi/jinja2@2.10"),
            (
                Ecosystem::PyPi,
                "torch",
                "2.1.0+cpu",
                "pkg:pypi/torch@2.1.0%2Bcpu",
            ),
            (
                Ecosystem::Npm,
                "@aws-sdk/client-s3",
                "3.600.0",
                "pkg:npm/%40aws-sdk/client-s3@3.600.0",
            ),
            (
                Ecosystem::Npm,
                "lodash",
                "4.17.21",
                "pkg:npm/lodash@4.17.21",
            ),
            (
                Ecosystem::CratesIo,
                "smallvec",
                "1.6.0",
                "pkg:cargo/smallvec@1.6.0",
            ),
            (
                Ecosystem::Go,
                "github.com/gorilla/mux",
                "v1.8.0",
                "pkg:golang/github.com/gorilla/mux@v1.8.0",
            ),
        ];
        for (eco, name, version, expected) in cases {
            assert_eq!(purl(&package(eco, name, version, false)), expected);
        }
    }

    #[test]
    fn cyclonedx_document() {
        let inventory = Inventory {
            packages: vec![
                package(Ecosystem::Npm, "@types/node", "20.1.0", false),
                package(Ecosystem::CratesIo, "my-lambda", "0.1.0", true),
            ],
            problems: vec![],
        };
        let serial = uuid::Uuid::from_u128(0x1234_5678_9abc_4def_8123_4567_89ab_cdef);
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("time");
        let bom = cyclonedx_at(&inventory, "thumbnailer", serial, at);
        assert_eq!(
            bom,
            json!({
                "bomFormat": "CycloneDX",
                "specVersion": "1.5",
                "serialNumber": "urn:uuid:12345678-9abc-4def-8123-456789abcdef",
                "version": 1,
                "metadata": {
                    "timestamp": "2023-11-14T22:13:20Z",
                    "component": {"type": "application", "bom-ref": "function:thumbnailer", "name": "thumbnailer"}
                },
                "components": [
                    {"type": "library", "bom-ref": "pkg:npm/%40types/node@20.1.0", "group": "@types",
                     "name": "node", "version": "20.1.0", "purl": "pkg:npm/%40types/node@20.1.0"},
                    {"type": "library", "bom-ref": "local:cargo/my-lambda@0.1.0",
                     "name": "my-lambda", "version": "0.1.0"}
                ]
            })
        );
    }

    #[test]
    fn fresh_serial_numbers() {
        let a = cyclonedx(&Inventory::default(), "f");
        let b = cyclonedx(&Inventory::default(), "f");
        assert_ne!(a["serialNumber"], b["serialNumber"]);
        assert!(a["serialNumber"]
            .as_str()
            .is_some_and(|s| s.starts_with("urn:uuid:")));
    }
}
