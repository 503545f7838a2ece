//! `dynamodb://TABLE`: the dataset catalog in a DynamoDB table (key `name`),
//! with `[catalog-dynamo]`'s region, endpoint and credentials. Publishing is
//! a conditional PutItem on the version before, so of two daemons racing to
//! publish one dataset exactly one wins. `hakiri catalog init dynamodb://T`
//! creates the table (on-demand capacity).

use crate::Client;
use anyhow::{bail, Context as _};
use hakiri_data_api::{Catalog, CatalogBackend, DatasetEntry};
use hakiri_kernel::{BoxFuture, Context};
use serde_json::{json, Value};
use std::sync::Arc;

pub struct DynamoBackend;

/// `dynamodb://TABLE[?region=R]`: the table, and the region when the URL
/// names one (it wins over `[catalog-dynamo] region` and the AWS chain).
pub fn parse_url(url: &str) -> anyhow::Result<(String, Option<String>)> {
    let rest = url.strip_prefix("dynamodb://").unwrap_or_default();
    let (table, query) = rest.split_once('?').unwrap_or((rest, ""));
    let valid = (3..=255).contains(&table.len())
        && table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !valid {
        bail!("`{url}`: expected dynamodb://TABLE[?region=REGION] (TABLE: 3-255 letters, digits, _ . -)");
    }
    let mut region = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("region", r))
                if !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
            {
                region = Some(r.to_string())
            }
            Some(("region", r)) => bail!("`{url}`: `{r}` is not an AWS region (e.g. eu-west-1)"),
            _ => bail!("`{url}`: unknown parameter `{pair}`; the only one is region=REGION"),
        }
    }
    Ok((table.to_string(), region))
}

/// The kernel's client for `region` (`None`: the configured one), built on
/// first use: building one loads the TLS roots and resolves credentials,
/// which every catalog call would repeat.
pub fn client(ctx: &Context, region: Option<&str>) -> anyhow::Result<Arc<Client>> {
    let cached = ctx.state::<crate::Clients>();
    let key = region.map(str::to_string);
    if let Some(c) = cached.as_ref().and_then(|s| s.get(&key)) {
        return Ok(c);
    }
    let built = Arc::new(Client::from_config(ctx, region)?.context(
        "the dynamodb catalog needs a region: dynamodb://TABLE?region=R, [catalog-dynamo] region or AWS_REGION (and endpoint for DynamoDB-compatible servers)",
    )?);
    Ok(match cached {
        Some(s) => s.insert(key, built),
        None => built,
    })
}

impl CatalogBackend for DynamoBackend {
    fn open<'a>(
        &'a self,
        url: &'a str,
        ctx: &'a Context,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn Catalog>>> {
        Box::pin(async move {
            let (table, region) = parse_url(url)?;
            Ok(Box::new(DynamoCatalog {
                client: client(ctx, region.as_deref())?,
                table,
            }) as Box<dyn Catalog>)
        })
    }
}

pub struct DynamoCatalog {
    pub client: Arc<Client>,
    pub table: String,
}

/// Creates the catalog table; an existing one is fine.
pub async fn init(client: &Client, table: &str) -> anyhow::Result<bool> {
    let created = client
        .call(
            "CreateTable",
            json!({
                "TableName": table,
                "AttributeDefinitions": [{"AttributeName": "name", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "name", "KeyType": "HASH"}],
                "BillingMode": "PAY_PER_REQUEST",
            }),
        )
        .await;
    match created {
        Ok(_) => Ok(true),
        Err(e) if format!("{e:#}").contains("ResourceInUseException") => Ok(false),
        Err(e) => Err(e),
    }
}

pub(crate) fn item(e: &DatasetEntry) -> Value {
    let mut item = json!({
        "name": {"S": e.name},
        "version": {"N": e.version.to_string()},
        "location": {"S": e.location},
        "source": {"S": e.source},
        "rows": {"N": e.rows.to_string()},
        "bytes": {"N": e.bytes.to_string()},
        "schema": {"S": e.schema.to_string()},
        "updated": {"S": e.updated},
    });
    if let Some(d) = &e.description {
        item["description"] = json!({"S": d});
    }
    item
}

fn entry(item: &Value) -> anyhow::Result<DatasetEntry> {
    let s = |k: &str| -> anyhow::Result<String> {
        item[k]["S"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("catalog item lacks `{k}`"))
    };
    let n = |k: &str| -> anyhow::Result<u64> {
        item[k]["N"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("catalog item lacks number `{k}`"))
    };
    let name = s("name")?;
    Ok(DatasetEntry {
        schema: DatasetEntry::parse_schema(&name, &s("schema")?)?,
        version: n("version")?,
        location: s("location")?,
        source: s("source")?,
        rows: n("rows")?,
        bytes: n("bytes")?,
        updated: s("updated")?,
        description: item["description"]["S"].as_str().map(str::to_string),
        name,
    })
}

impl DynamoCatalog {
    fn missing_table(&self, e: anyhow::Error) -> anyhow::Error {
        if format!("{e:#}").contains("ResourceNotFoundException") {
            return anyhow::anyhow!(
                "DynamoDB table `{}` does not exist; create it with `hakiri catalog init dynamodb://{}`",
                self.table,
                self.table
            );
        }
        e
    }
}

impl Catalog for DynamoCatalog {
    fn list(&self) -> BoxFuture<'_, anyhow::Result<Vec<DatasetEntry>>> {
        Box::pin(async move {
            let mut out = Vec::new();
            let mut start: Option<Value> = None;
            loop {
                let mut request =
                    json!({"TableName": self.table, "ConsistentRead": true, "Limit": 200});
                if let Some(key) = start.take() {
                    request["ExclusiveStartKey"] = key;
                }
                let page = self
                    .client
                    .call("Scan", request)
                    .await
                    .map_err(|e| self.missing_table(e))?;
                for it in page["Items"].as_array().into_iter().flatten() {
                    out.push(entry(it)?);
                }
                match page.get("LastEvaluatedKey") {
                    Some(key) if !key.is_null() => start = Some(key.clone()),
                    _ => break,
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, anyhow::Result<Option<DatasetEntry>>> {
        Box::pin(async move {
            let got = self
                .client
                .call("GetItem", json!({"TableName": self.table, "Key": {"name": {"S": name}}, "ConsistentRead": true}))
                .await
                .map_err(|e| self.missing_table(e))?;
            got.get("Item")
                .filter(|i| !i.is_null())
                .map(entry)
                .transpose()
        })
    }

    fn publish(&self, e: DatasetEntry) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let mut request = json!({
                "TableName": self.table,
                "Item": item(&e),
                "ExpressionAttributeNames": {"#n": "name"},
            });
            if e.version <= 1 {
                request["ConditionExpression"] = "attribute_not_exists(#n)".into();
            } else {
                request["ConditionExpression"] = "attribute_exists(#n) AND #v = :prev".into();
                request["ExpressionAttributeNames"]["#v"] = "version".into();
                request["ExpressionAttributeValues"] =
                    json!({":prev": {"N": (e.version - 1).to_string()}});
            }
            match self.client.call("PutItem", request).await {
                Ok(_) => Ok(()),
                Err(err) if format!("{err:#}").contains("ConditionalCheckFailed") => {
                    // A retried PutItem whose first attempt landed (its answer
                    // lost) fails its own condition: the item is then ours.
                    let found = self.get(&e.name).await?;
                    if found.as_ref().is_some_and(|f| item(f) == item(&e)) {
                        return Ok(());
                    }
                    Err(hakiri_data_api::conflict(
                        &e.name,
                        e.version.saturating_sub(1),
                        found.map(|f| f.version),
                    ))
                }
                Err(err) => Err(self.missing_table(err)),
            }
        })
    }

    fn remove<'a>(&'a self, name: &'a str) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move {
            let old = self
                .client
                .call(
                    "DeleteItem",
                    json!({"TableName": self.table, "Key": {"name": {"S": name}}, "ReturnValues": "ALL_OLD"}),
                )
                .await
                .map_err(|e| self.missing_table(e))?;
            Ok(old.get("Attributes").is_some_and(|a| !a.is_null()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hakiri_kernel::{Config, Profile};

    static PROFILE: Profile = hakiri_kernel::embedded_profile!("test");

    #[test]
    fn table_names_are_checked() {
        let table = |url: &str| parse_url(url).map(|(t, _)| t);
        assert_eq!(
            table("dynamodb://hakiri_catalog").unwrap(),
            "hakiri_catalog"
        );
        assert_eq!(table("dynamodb://t-1.x?region=eu-west-1").unwrap(), "t-1.x");
        assert!(table("dynamodb://").is_err() && table("dynamodb://a b").is_err());
        assert_eq!(
            parse_url("dynamodb://cat?region=eu-west-1").unwrap(),
            ("cat".to_string(), Some("eu-west-1".to_string()))
        );
        assert_eq!(parse_url("dynamodb://cat").unwrap().1, None);
        let err = parse_url("dynamodb://cat?regoin=eu-west-1").unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown parameter `regoin=eu-west-1`"),
            "{err}"
        );
        assert!(parse_url("dynamodb://cat?region=").is_err());
        assert!(parse_url("dynamodb://cat?region=eu/../x").is_err());
    }

    #[test]
    fn a_region_in_the_url_wins_and_gets_its_own_client() {
        let config = Config::parse(
            "[catalog-dynamo]\nregion = \"us-east-1\"\naccess_key_id = \"k\"\nsecret_access_key = \"s\"\n",
            None,
        )
        .unwrap();
        let ctx = Context::from_inventory(config, &PROFILE).unwrap();
        let (configured, eu) = (
            client(&ctx, None).unwrap(),
            client(&ctx, Some("eu-west-1")).unwrap(),
        );
        assert_eq!(configured.region, "us-east-1");
        assert_eq!(
            configured.endpoint,
            "https://dynamodb.us-east-1.amazonaws.com"
        );
        assert_eq!(eu.region, "eu-west-1");
        assert_eq!(eu.endpoint, "https://dynamodb.eu-west-1.amazonaws.com");
        assert!(
            Arc::ptr_eq(&eu, &client(&ctx, Some("eu-west-1")).unwrap()),
            "one client per region"
        );
    }

    #[tokio::test]
    async fn passes_the_catalog_conformance_suite() {
        let Some(endpoint) =
            hakiri_testkit::configured_or_skip("HAKIRI_TEST_AWS_ENDPOINT", module_path!())
        else {
            return;
        };
        let config = Config::parse(
            &format!("[catalog-dynamo]\nregion = \"us-east-1\"\nendpoint = \"{endpoint}\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\n"),
            None,
        )
        .unwrap();
        let ctx = Context::from_inventory(config, &PROFILE).unwrap();
        let table = format!("hakiri-conformance-{}", std::process::id());
        let client = client(&ctx, None).unwrap();
        assert!(init(&client, &table).await.unwrap(), "created");
        assert!(
            !init(&client, &table).await.unwrap(),
            "an existing table is fine"
        );
        let catalog = DynamoBackend
            .open(&format!("dynamodb://{table}"), &ctx)
            .await
            .unwrap();
        hakiri_data_api::conformance::check(catalog.as_ref(), "conf_")
            .await
            .unwrap();
        let gone = DynamoBackend
            .open("dynamodb://no-such-table-here", &ctx)
            .await
            .unwrap();
        let err = gone.list().await.unwrap_err().to_string();
        assert!(
            err.contains("hakiri catalog init dynamodb://no-such-table-here"),
            "{err}"
        );
        client
            .call("DeleteTable", json!({"TableName": table}))
            .await
            .unwrap();
    }
}
