//! Reading a Dapr `Component` manifest into component metadata.
//!
//! Only the envelope is checked here (kind, type, version, well-formed entries); what
//! the metadata means is the component's business. Values of any YAML scalar type become
//! strings, as Dapr does (`maxDeliver: 5` is `"5"`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::pubsub::Metadata;

/// The component type and version this host runs.
pub const COMPONENT_TYPE: &str = "pubsub.jetstream";
/// The only version of the type.
pub const COMPONENT_VERSION: &str = "v1";

/// Why a manifest cannot be used. Each message is one line and names what is wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The path given.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// Not YAML, or not shaped like a Component.
    #[error("{path}: malformed manifest: {reason}")]
    Malformed {
        /// The path given.
        path: String,
        /// What the parser said, on one line.
        reason: String,
    },
    /// `kind` is not `Component`.
    #[error("{path}: kind is {found:?}, expected \"Component\"")]
    Kind {
        /// The path given.
        path: String,
        /// The kind found.
        found: String,
    },
    /// `spec.type` is another component type.
    #[error("{path}: spec.type is {found:?}, this host runs \"pubsub.jetstream\"")]
    Type {
        /// The path given.
        path: String,
        /// The type found.
        found: String,
    },
    /// `spec.version` is not `v1`.
    #[error("{path}: spec.version is {found:?}, pubsub.jetstream has only \"v1\"")]
    Version {
        /// The path given.
        path: String,
        /// The version found.
        found: String,
    },
    /// An entry has no usable value.
    #[error("{path}: metadata {name:?}: {reason}")]
    Entry {
        /// The path given.
        path: String,
        /// The entry's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    #[serde(default)]
    #[allow(dead_code)]
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<ObjectMeta>,
    spec: Option<Spec>,
}

#[derive(Deserialize)]
struct ObjectMeta {
    #[serde(default)]
    name: Option<String>,
}

/// A manifest read: the component's name (`metadata.name`, what Dapr calls the pub/sub and
/// what CloudEvents carry as `pubsubname`) and its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// `metadata.name`; empty when the manifest gives none.
    pub name: String,
    /// `spec.metadata`, with the overrides applied.
    pub metadata: Metadata,
}

#[derive(Deserialize)]
struct Spec {
    #[serde(rename = "type")]
    component_type: Option<String>,
    version: Option<String>,
    #[serde(default)]
    metadata: Option<Vec<Entry>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    name: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    secret_key_ref: Option<BTreeMap<String, String>>,
}

/// Reads a manifest file; `overrides` (`--metadata key=value`) replace or add entries, and
/// satisfy a `secretKeyRef` of the same name.
pub fn read_file(path: &Path, overrides: &[(String, String)]) -> Result<Component, ManifestError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|err| ManifestError::Read {
        path: shown.clone(),
        reason: err.to_string(),
    })?;
    parse_component(&shown, &text, overrides)
}

/// Parses manifest text into its metadata; `path` only names the source in errors.
pub fn parse(
    path: &str,
    text: &str,
    overrides: &[(String, String)],
) -> Result<Metadata, ManifestError> {
    parse_component(path, text, overrides).map(|component| component.metadata)
}

/// Parses manifest text; `path` only names the source in errors.
pub fn parse_component(
    path: &str,
    text: &str,
    overrides: &[(String, String)],
) -> Result<Component, ManifestError> {
    let malformed = |reason: String| ManifestError::Malformed {
        path: path.to_string(),
        reason,
    };
    let manifest: Manifest =
        serde_saphyr::from_str(text).map_err(|err| malformed(one_line(&err.to_string())))?;
    let kind = manifest.kind.unwrap_or_default();
    if kind != "Component" {
        return Err(ManifestError::Kind {
            path: path.to_string(),
            found: kind,
        });
    }
    let spec = manifest.spec.ok_or_else(|| malformed("no spec".into()))?;
    let component_type = spec.component_type.unwrap_or_default();
    if component_type != COMPONENT_TYPE {
        return Err(ManifestError::Type {
            path: path.to_string(),
            found: component_type,
        });
    }
    let version = spec.version.unwrap_or_default();
    if version != COMPONENT_VERSION {
        return Err(ManifestError::Version {
            path: path.to_string(),
            found: version,
        });
    }
    let mut metadata = Metadata::new();
    for (index, entry) in spec.metadata.unwrap_or_default().into_iter().enumerate() {
        let name = entry
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| malformed(format!("spec.metadata[{index}] has no name")))?;
        let entry_error = |reason: &str| ManifestError::Entry {
            path: path.to_string(),
            name: name.clone(),
            reason: reason.to_string(),
        };
        if overrides.iter().any(|(key, _)| key == &name) {
            continue;
        }
        match (entry.value, entry.secret_key_ref) {
            (Some(value), None) => metadata.push((name, value)),
            (None, Some(reference)) => {
                let secret = reference.get("name").map(String::as_str).unwrap_or("?");
                return Err(entry_error(&format!(
                    "secretKeyRef to secret {secret:?} cannot be resolved: this host has no secret store; \
                     give the value with --metadata {name}=..."
                )));
            }
            (Some(_), Some(_)) => return Err(entry_error("has both value and secretKeyRef")),
            (None, None) => metadata.push((name, String::new())),
        }
    }
    metadata.extend(overrides.iter().cloned());
    Ok(Component {
        name: manifest
            .metadata
            .and_then(|meta| meta.name)
            .unwrap_or_default(),
        metadata,
    })
}

/// Parser messages can span lines (snippets); users get one line.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.jetstream
  version: v1
  metadata:
  - name: natsURL
    value: "nats://localhost:4222"
  - name: maxDeliver
    value: 5
  - name: flowControl
    value: false
  - name: ackWait
    value: 10s
"#;

    fn pairs(list: &[(&str, &str)]) -> Metadata {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn scalars_become_strings_as_dapr_does() {
        assert_eq!(parse_component("c.yaml", GOOD, &[]).unwrap().name, "pubsub");
        let metadata = parse("c.yaml", GOOD, &[]).unwrap();
        assert_eq!(
            metadata,
            pairs(&[
                ("natsURL", "nats://localhost:4222"),
                ("maxDeliver", "5"),
                ("flowControl", "false"),
                ("ackWait", "10s")
            ])
        );
    }

    #[test]
    fn overrides_replace_and_add() {
        let metadata = parse(
            "c.yaml",
            GOOD,
            &pairs(&[("maxDeliver", "7"), ("durableName", "d")]),
        )
        .unwrap();
        assert_eq!(
            metadata.iter().filter(|(k, _)| k == "maxDeliver").count(),
            1
        );
        assert!(metadata.contains(&("maxDeliver".into(), "7".into())));
        assert!(metadata.contains(&("durableName".into(), "d".into())));
    }

    #[test]
    fn wrong_envelope_names_what_is_wrong() {
        let other_type = GOOD.replace("pubsub.jetstream", "pubsub.redis");
        assert_eq!(
            parse("c.yaml", &other_type, &[]).unwrap_err().to_string(),
            "c.yaml: spec.type is \"pubsub.redis\", this host runs \"pubsub.jetstream\""
        );
        let other_version = GOOD.replace("version: v1", "version: v2");
        assert_eq!(
            parse("c.yaml", &other_version, &[])
                .unwrap_err()
                .to_string(),
            "c.yaml: spec.version is \"v2\", pubsub.jetstream has only \"v1\""
        );
        let other_kind = GOOD.replace("kind: Component", "kind: Subscription");
        assert!(
            parse("c.yaml", &other_kind, &[])
                .unwrap_err()
                .to_string()
                .contains("kind is \"Subscription\"")
        );
    }

    #[test]
    fn unresolvable_secret_is_an_error_unless_overridden() {
        let with_secret = GOOD.replace(
            "    value: \"nats://localhost:4222\"",
            "    secretKeyRef:\n      name: nats\n      key: url",
        );
        let err = parse("c.yaml", &with_secret, &[]).unwrap_err().to_string();
        assert!(
            err.contains("metadata \"natsURL\"") && err.contains("secretKeyRef"),
            "{err}"
        );
        assert!(!err.contains('\n'));
        let metadata = parse("c.yaml", &with_secret, &pairs(&[("natsURL", "nats://h:1")])).unwrap();
        assert!(metadata.contains(&("natsURL".into(), "nats://h:1".into())));
    }

    #[test]
    fn malformed_yaml_is_one_line() {
        for text in [
            "kind: [",
            "- a\n- b",
            "",
            "kind: Component\nspec: 5",
            "\u{0}\u{1}",
        ] {
            let err = parse("c.yaml", text, &[]).unwrap_err().to_string();
            assert!(!err.contains('\n'), "{err}");
        }
    }

    /// Cases per property: 2,000 in the test suite; `PROPTEST_CASES=1000000` to fuzz.
    fn fuzz_cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|cases| cases.parse().ok())
            .unwrap_or(2_000)
    }

    /// YAML-ish scalars, including the characters and forms that make parsers stumble.
    fn yaml_value() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            ".*",
            "[-+]?[0-9_]{0,30}(\\.[0-9]*)?",
            Just("~".to_string()),
            Just("null".to_string()),
            Just("&a [*a, *a]".to_string()),
            Just("{name: x}".to_string()),
            Just("!!binary aGk=".to_string()),
            Just("\"unterminated".to_string()),
            "[\\[\\]{}:,#&*!|>'\"%@` -]{0,12}",
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(fuzz_cases()))]

        #[test]
        fn arbitrary_text_never_panics_and_errors_are_one_line(text in ".*") {
            match parse("c.yaml", &text, &[]) {
                Ok(metadata) => proptest::prop_assert!(metadata.len() <= text.len()),
                Err(err) => {
                    let shown = err.to_string();
                    proptest::prop_assert!(!shown.is_empty() && !shown.contains('\n'), "{}", shown);
                }
            }
        }

        #[test]
        fn component_shaped_text_never_panics(
            kind in proptest::prop_oneof![proptest::strategy::Just("Component".to_string()), yaml_value()],
            component_type in proptest::prop_oneof![proptest::strategy::Just("pubsub.jetstream".to_string()), yaml_value()],
            version in proptest::prop_oneof![proptest::strategy::Just("v1".to_string()), yaml_value()],
            entries in proptest::collection::vec((yaml_value(), yaml_value(), proptest::bool::ANY), 0..8),
        ) {
            let mut text = format!("apiVersion: dapr.io/v1alpha1\nkind: {kind}\nspec:\n  type: {component_type}\n  version: {version}\n  metadata:\n");
            for (name, value, secret) in &entries {
                if *secret {
                    text.push_str(&format!("  - name: {name}\n    secretKeyRef:\n      name: {value}\n      key: k\n"));
                } else {
                    text.push_str(&format!("  - name: {name}\n    value: {value}\n"));
                }
            }
            match parse("c.yaml", &text, &[]) {
                Ok(metadata) => proptest::prop_assert!(metadata.len() <= entries.len()),
                Err(err) => {
                    let shown = err.to_string();
                    proptest::prop_assert!(!shown.is_empty() && !shown.contains('\n'), "{}", shown);
                }
            }
        }
    }
}
