//! A scratch bucket on the S3-compatible server `.ci/services.sh` starts
//! (`HAKIRI_TEST_AWS_ENDPOINT`), and the environment that points a Hakiri
//! binary at it, so tests do not each spell out endpoint and keys.

use crate::http;

pub struct Bucket {
    pub endpoint: String,
    pub name: String,
}

impl Bucket {
    /// Creates bucket `name` (made unique per test process).
    pub fn create(endpoint: &str, name: &str) -> Bucket {
        let name = format!("{name}-{}", std::process::id());
        let url = format!("{endpoint}/{name}");
        let resp = http::request("PUT", &url, &[], b"", http::TIMEOUT)
            .unwrap_or_else(|e| panic!("cannot create bucket {url}: {e}"));
        assert_eq!(resp.status, 200, "creating {url}: {}", resp.body);
        Bucket {
            endpoint: endpoint.to_string(),
            name,
        }
    }

    /// `s3://bucket/prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.name)
    }

    /// `[s3-sync]` and the AWS variables a binary needs to reach the server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("HAKIRI_S3_SYNC__ENDPOINT", self.endpoint.clone()),
            ("HAKIRI_S3_SYNC__ALLOW_HTTP", "true".into()),
            ("HAKIRI_S3_SYNC__REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ]
    }

    /// Deletes `key`. The server refuses unsigned deletes, so this goes
    /// through boto3, which `.ci/services.sh` installs with moto.
    pub fn delete(&self, key: &str) {
        let script = "import boto3,sys; boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='test', aws_secret_access_key='test', region_name='us-east-1').delete_object(Bucket=sys.argv[2], Key=sys.argv[3])";
        let out = std::process::Command::new("python3")
            .args(["-c", script, &self.endpoint, &self.name, key])
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "deleting {key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Whether `key` exists.
    pub fn has(&self, key: &str) -> bool {
        let url = format!("{}/{}/{key}", self.endpoint, self.name);
        http::request("GET", &url, &[], b"", http::TIMEOUT).is_ok_and(|r| r.status == 200)
    }
}
