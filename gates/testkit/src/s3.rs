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

    /// Deletes `key`.
    pub fn delete(&self, key: &str) {
        self.boto("c.delete_object(Bucket=b, Key=k)", key)
            .expect("the delete succeeds");
    }

    /// The object at `key`, if there is one.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.boto(
            "sys.stdout.buffer.write(c.get_object(Bucket=b, Key=k)['Body'].read())",
            key,
        )
    }

    /// Runs `statement` with boto3 (installed with moto by `.ci/services.sh`)
    /// as client `c` on bucket `b` and key `k`: the server refuses unsigned
    /// object requests. `None` if it raised.
    fn boto(&self, statement: &str, key: &str) -> Option<Vec<u8>> {
        let script = format!(
            "import boto3,sys\nb, k = sys.argv[2], sys.argv[3]\nc = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='test', aws_secret_access_key='test', region_name='us-east-1')\n{statement}"
        );
        let out = std::process::Command::new("python3")
            .args(["-c", &script, &self.endpoint, &self.name, key])
            .output()
            .expect("python3 runs");
        out.status.success().then_some(out.stdout)
    }
}
