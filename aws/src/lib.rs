//! AWS access for every capability that talks to AWS (S3, DynamoDB): one
//! credential chain and one SigV4 signer, both object_store's (linked
//! anyway for S3), instead of a signer and a chain per service.
//!
//! The chain, first match wins: `[section]` keys in hakiri.toml, the
//! `AWS_*` environment, the shared credentials file's profile
//! (`AWS_PROFILE`, default `default`), then web identity (EKS/IRSA), the
//! ECS container role and the EC2 instance role. The region comes from the
//! config, `AWS_REGION`/`AWS_DEFAULT_REGION`, then the shared config file.

use anyhow::{bail, Context as _};
use object_store::aws::{AmazonS3Builder, AwsAuthorizer};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use object_store::aws::{AwsCredential, AwsCredentialProvider};
pub use object_store::client::{HttpRequest, HttpRequestBody};

/// What a config section says about reaching AWS; unset fields fall back
/// to the chain.
#[derive(Debug, Default, Clone)]
pub struct Settings {
    pub region: Option<String>,
    /// For AWS-compatible servers (MinIO, R2, moto, DynamoDB Local).
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow plain-HTTP endpoints (local servers).
    pub allow_http: bool,
}

/// An S3 client builder for `bucket` with `settings` and the chain.
pub fn s3(settings: &Settings, bucket: &str) -> anyhow::Result<AmazonS3Builder> {
    let files = SharedFiles::from_env();
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_allow_http(settings.allow_http);
    if let Some(r) = region(settings) {
        b = b.with_region(r);
    }
    if let Some(e) = &settings.endpoint {
        b = b.with_endpoint(e);
    }
    let keys = match (&settings.access_key_id, &settings.secret_access_key) {
        (Some(k), Some(s)) => Some(AwsCredential {
            key_id: k.clone(),
            secret_key: s.clone(),
            token: None,
        }),
        (Some(_), None) | (None, Some(_)) => {
            bail!("set both access_key_id and secret_access_key, or neither (to use the AWS credential chain)")
        }
        // from_env already took AWS_ACCESS_KEY_ID and friends.
        _ if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() => None,
        _ => files.keys()?,
    };
    if let Some(c) = keys {
        b = b
            .with_access_key_id(c.key_id)
            .with_secret_access_key(c.secret_key);
        if let Some(t) = c.token {
            b = b.with_token(t);
        }
    }
    Ok(b)
}

/// The chain's credentials, for services other than S3.
pub fn credentials(settings: &Settings) -> anyhow::Result<AwsCredentialProvider> {
    let store = s3(settings, "hakiri-credentials")?
        .build()
        .context("invalid AWS settings")?;
    Ok(store.credentials().clone())
}

/// The region: configured, else `AWS_REGION`/`AWS_DEFAULT_REGION`, else the
/// shared config file's profile.
pub fn region(settings: &Settings) -> Option<String> {
    settings
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .or_else(|| SharedFiles::from_env().region())
}

/// Signs `request` for `service` in `region` with the chain's current
/// credential (fetched, and refreshed when it expires, by the provider).
pub async fn sign(
    provider: &AwsCredentialProvider,
    service: &str,
    region: &str,
    request: &mut HttpRequest,
) -> anyhow::Result<()> {
    let credential = provider.get_credential().await.context(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile in ~/.aws/credentials (AWS_PROFILE), or run with an IAM role",
    )?;
    AwsAuthorizer::new(&credential, service, region).authorize(request, None);
    Ok(())
}

/// `~/.aws/credentials` and `~/.aws/config` (or `AWS_SHARED_CREDENTIALS_FILE`
/// and `AWS_CONFIG_FILE`), read for one profile.
struct SharedFiles {
    credentials: Option<PathBuf>,
    config: Option<PathBuf>,
    profile: String,
    /// Whether the profile was asked for (`AWS_PROFILE`), so its absence is an error.
    explicit: bool,
}

impl SharedFiles {
    fn from_env() -> SharedFiles {
        let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".aws"));
        let file = |var: &str, name: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(name)))
        };
        let profile = std::env::var("AWS_PROFILE").ok();
        SharedFiles {
            credentials: file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
            config: file("AWS_CONFIG_FILE", "config"),
            explicit: profile.is_some(),
            profile: profile.unwrap_or_else(|| "default".into()),
        }
    }

    fn keys(&self) -> anyhow::Result<Option<AwsCredential>> {
        let from_credentials = self
            .credentials
            .as_deref()
            .and_then(|p| section(p, &self.profile));
        let from_config = || {
            self.config
                .as_deref()
                .and_then(|p| section(p, &config_section(&self.profile)))
        };
        let Some(s) = from_credentials.or_else(from_config) else {
            if self.explicit {
                bail!(
                    "AWS_PROFILE is `{}`, but no such profile is in {} or {}",
                    self.profile,
                    shown(&self.credentials),
                    shown(&self.config)
                );
            }
            return Ok(None);
        };
        match (s.get("aws_access_key_id"), s.get("aws_secret_access_key")) {
            (Some(k), Some(secret)) => Ok(Some(AwsCredential {
                key_id: k.clone(),
                secret_key: secret.clone(),
                token: s.get("aws_session_token").cloned(),
            })),
            // A profile without keys (SSO, role_arn) is left to the rest of the chain.
            _ => Ok(None),
        }
    }

    fn region(&self) -> Option<String> {
        let p = self.config.as_deref()?;
        section(p, &config_section(&self.profile))?
            .get("region")
            .cloned()
    }
}

fn shown(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map_or("(no file)".into(), |p| p.display().to_string())
}

/// In `~/.aws/config` a profile's section is `[profile NAME]`, except `[default]`.
fn config_section(profile: &str) -> String {
    if profile == "default" {
        profile.into()
    } else {
        format!("profile {profile}")
    }
}

/// The `key = value` pairs of `[name]` in an INI file, if it has that section.
fn section(path: &Path, name: &str) -> Option<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut current: Option<bool> = None;
    let mut found = None::<HashMap<String, String>>;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(head) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let here = head.trim() == name;
            if here {
                found.get_or_insert_with(HashMap::new);
            }
            current = Some(here);
            continue;
        }
        if current == Some(true) {
            if let (Some(map), Some((k, v))) = (found.as_mut(), line.split_once('=')) {
                map.insert(k.trim().to_lowercase(), v.trim().to_string());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path, credentials: &str, config: &str, profile: Option<&str>) -> SharedFiles {
        std::fs::write(dir.join("credentials"), credentials).unwrap();
        std::fs::write(dir.join("config"), config).unwrap();
        SharedFiles {
            credentials: Some(dir.join("credentials")),
            config: Some(dir.join("config")),
            profile: profile.unwrap_or("default").into(),
            explicit: profile.is_some(),
        }
    }

    const CREDENTIALS: &str = "[default]\naws_access_key_id = AKIDEFAULT\naws_secret_access_key = s1\n\n# a comment\n[work]\naws_access_key_id=AKIWORK\naws_secret_access_key=s2\naws_session_token = tok\n";
    const CONFIG: &str =
        "[default]\nregion = eu-west-1\n[profile work]\nregion = ap-south-1\n[profile sso]\nsso_start_url = x\n";

    #[test]
    fn profiles_come_from_the_shared_files() {
        let dir = tempfile::tempdir().unwrap();
        let default = files(dir.path(), CREDENTIALS, CONFIG, None);
        let c = default.keys().unwrap().unwrap();
        assert_eq!((c.key_id.as_str(), c.token), ("AKIDEFAULT", None));
        assert_eq!(default.region().as_deref(), Some("eu-west-1"));
        let work = files(dir.path(), CREDENTIALS, CONFIG, Some("work"));
        let c = work.keys().unwrap().unwrap();
        assert_eq!(c.key_id, "AKIWORK");
        assert_eq!(c.token.as_deref(), Some("tok"));
        assert_eq!(work.region().as_deref(), Some("ap-south-1"));
    }

    #[test]
    fn a_missing_profile_is_an_error_only_when_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let err = files(dir.path(), CREDENTIALS, CONFIG, Some("nope"))
            .keys()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("AWS_PROFILE is `nope`, but no such profile"),
            "{err}"
        );
        assert!(files(dir.path(), "", "", None).keys().unwrap().is_none());
        // A profile without keys (SSO) falls through to the rest of the chain.
        assert!(files(dir.path(), CREDENTIALS, CONFIG, Some("sso"))
            .keys()
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn requests_are_signed_with_sigv4() {
        let provider = credentials(&Settings {
            region: Some("us-east-1".into()),
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key: Some("secret".into()),
            ..Settings::default()
        })
        .unwrap();
        let mut req = http::Request::builder()
            .method("POST")
            .uri("https://dynamodb.us-east-1.amazonaws.com/")
            .header("x-amz-target", "DynamoDB_20120810.ListTables")
            .body(HttpRequestBody::from("{}".to_string()))
            .unwrap();
        sign(&provider, "dynamodb", "us-east-1", &mut req)
            .await
            .unwrap();
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
                && auth.contains("/us-east-1/dynamodb/aws4_request")
                && auth.contains("x-amz-target"),
            "{auth}"
        );
    }
}
