//! Media on an S3-protocol server: one bucket per app, reachable only with
//! that app's own access key, whose IAM policy names that bucket alone.
//!
//! The platform holds an administrator's key (for buckets, users and
//! policies, and to back media up); apps get theirs in their environment.
//! Requests are signed with AWS Signature Version 4 here: the IAM query API
//! and bucket creation are a handful of calls, and objects go through
//! `object_store`.

use std::sync::Arc;

/// How long one call to the S3 or IAM API may take.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::{Result, ServiceError};

/// Where media objects live inside an app's bucket.
pub const MEDIA_PREFIX: &str = "media/";

/// The platform's administrative access to the S3 server.
#[derive(Clone)]
pub struct S3Admin {
    endpoint: String,
    region: String,
    access_key_id: String,
    secret_access_key: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for S3Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Admin")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// An app's own key.
#[derive(Clone, PartialEq, Eq)]
pub struct AppKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppKey")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Percent-encodes as SigV4 wants: everything but `A-Z a-z 0-9 - _ . ~`
/// (and `/` when `keep_slash`).
fn uri_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The value between `<tag>` and `</tag>`, if any.
fn xml_value<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{tag}>"))? + start;
    Some(&text[start..end])
}

/// A SigV4 signature for one request.
#[allow(clippy::too_many_arguments)]
fn authorization(
    access_key_id: &str,
    secret: &str,
    region: &str,
    service: &str,
    method: &str,
    host: &str,
    path: &str,
    query: &str,
    amz_date: &str,
    payload_hash: &str,
) -> String {
    let date = &amz_date[..8];
    let canonical = format!(
        "{method}\n{}\n{query}\nhost:{host}\nx-amz-content-sha256:{payload_hash}\nx-amz-date:{amz_date}\n\nhost;x-amz-content-sha256;x-amz-date\n{payload_hash}",
        uri_encode(path, true)
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}"
    )
}

/// Whether `name` can be an S3 bucket name.
pub fn valid_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

impl S3Admin {
    pub fn new(
        endpoint: &str,
        region: &str,
        access_key_id: &str,
        secret_access_key: &str,
    ) -> Result<Self> {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(ServiceError::Invalid(format!(
                "{endpoint:?} is not an http(s) URL"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        Ok(Self {
            endpoint,
            region: region.to_owned(),
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
            http,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    fn host(&self) -> &str {
        self.endpoint
            .split_once("://")
            .map_or(self.endpoint.as_str(), |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or_default()
    }

    /// Sends a signed request; answers status and body.
    async fn send(
        &self,
        service: &str,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
        content_type: Option<&str>,
    ) -> Result<(u16, String)> {
        let amz_date = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let payload_hash = hex::encode(Sha256::digest(&body));
        let region = if service == "iam" {
            "us-east-1"
        } else {
            &self.region
        };
        let auth = authorization(
            &self.access_key_id,
            &self.secret_access_key,
            region,
            service,
            method.as_str(),
            self.host(),
            path,
            "",
            &amz_date,
            &payload_hash,
        );
        let mut request = self
            .http
            .request(
                method,
                format!("{}{}", self.endpoint, uri_encode(path, true)),
            )
            .header("x-amz-date", &amz_date)
            .header("x-amz-content-sha256", &payload_hash)
            .header("authorization", auth)
            .body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ServiceError::Unavailable(format!("S3 server {}: {e}", self.endpoint)))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Ok((status, text))
    }

    /// One IAM query action; the answer's XML on success.
    async fn iam(&self, action: &str, params: &[(&str, &str)]) -> Result<String> {
        let mut body = format!("Action={action}&Version=2010-05-08");
        for (k, v) in params {
            body.push('&');
            body.push_str(&uri_encode(k, false));
            body.push('=');
            body.push_str(&uri_encode(v, false));
        }
        let (status, text) = self
            .send(
                "iam",
                reqwest::Method::POST,
                "/",
                body.into_bytes(),
                Some("application/x-www-form-urlencoded; charset=utf-8"),
            )
            .await?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        let code = xml_value(&text, "Code").unwrap_or("error");
        let message = xml_value(&text, "Message").unwrap_or("");
        Err(ServiceError::Unavailable(format!(
            "IAM {action}: {code} {message} (HTTP {status})"
        )))
    }

    /// Whether the administrator's key works.
    pub async fn ping(&self) -> Result<()> {
        self.iam("ListUsers", &[]).await.map(drop)
    }

    /// Creates `bucket` unless it is already ours.
    pub async fn create_bucket(&self, bucket: &str) -> Result<()> {
        if !valid_bucket(bucket) {
            return Err(ServiceError::Invalid(format!(
                "{bucket:?} is not a bucket name"
            )));
        }
        let (status, text) = self
            .send(
                "s3",
                reqwest::Method::PUT,
                &format!("/{bucket}"),
                Vec::new(),
                None,
            )
            .await?;
        if (200..300).contains(&status)
            || xml_value(&text, "Code") == Some("BucketAlreadyOwnedByYou")
        {
            return Ok(());
        }
        Err(ServiceError::Unavailable(format!(
            "creating bucket {bucket}: {} (HTTP {status})",
            xml_value(&text, "Code").unwrap_or("error")
        )))
    }

    /// Removes every object of `bucket`, then the bucket.
    pub async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        use futures::TryStreamExt;
        use object_store::ObjectStore;
        let store = self.store(bucket)?;
        let objects: Vec<_> = store
            .list(None)
            .try_collect()
            .await
            .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        for object in objects {
            store
                .delete(&object.location)
                .await
                .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        }
        let (status, text) = self
            .send(
                "s3",
                reqwest::Method::DELETE,
                &format!("/{bucket}"),
                Vec::new(),
                None,
            )
            .await?;
        if (200..300).contains(&status) || status == 404 {
            return Ok(());
        }
        Err(ServiceError::Unavailable(format!(
            "deleting bucket {bucket}: {} (HTTP {status})",
            xml_value(&text, "Code").unwrap_or("error")
        )))
    }

    /// Creates the IAM user `user`, allowed to read, write, list and delete
    /// in `bucket` and nowhere else, and a fresh key for it.
    pub async fn create_app_user(&self, user: &str, bucket: &str) -> Result<AppKey> {
        match self.iam("CreateUser", &[("UserName", user)]).await {
            Ok(_) => {}
            Err(ServiceError::Unavailable(m)) if m.contains("EntityAlreadyExists") => {}
            Err(e) => return Err(e),
        }
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"],
                "Resource": [
                    format!("arn:aws:s3:::{bucket}"),
                    format!("arn:aws:s3:::{bucket}/*"),
                ],
            }],
        })
        .to_string();
        self.iam(
            "PutUserPolicy",
            &[
                ("UserName", user),
                ("PolicyName", "rampart-media"),
                ("PolicyDocument", &policy),
            ],
        )
        .await?;
        let answer = self.iam("CreateAccessKey", &[("UserName", user)]).await?;
        let id = xml_value(&answer, "AccessKeyId");
        let secret = xml_value(&answer, "SecretAccessKey");
        match (id, secret) {
            (Some(id), Some(secret)) => Ok(AppKey {
                access_key_id: id.to_owned(),
                secret_access_key: secret.to_owned(),
            }),
            _ => Err(ServiceError::Unavailable(
                "IAM CreateAccessKey answered without a key".into(),
            )),
        }
    }

    /// Removes an app's user with its key and policy.
    pub async fn delete_app_user(&self, user: &str, access_key_id: &str) -> Result<()> {
        let _ = self
            .iam(
                "DeleteAccessKey",
                &[("UserName", user), ("AccessKeyId", access_key_id)],
            )
            .await;
        let _ = self
            .iam(
                "DeleteUserPolicy",
                &[("UserName", user), ("PolicyName", "rampart-media")],
            )
            .await;
        self.iam("DeleteUser", &[("UserName", user)])
            .await
            .map(drop)
    }

    /// An object store on `bucket` with the administrator's key.
    pub fn store(&self, bucket: &str) -> Result<Arc<dyn object_store::ObjectStore>> {
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_region(&self.region)
            .with_access_key_id(&self.access_key_id)
            .with_secret_access_key(&self.secret_access_key)
            .with_bucket_name(bucket)
            .with_allow_http(self.endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false)
            .build()
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        Ok(Arc::new(store))
    }
}

/// The objects under [`MEDIA_PREFIX`]. The bucket is the app's alone, so
/// it is listed whole and filtered here (some S3 servers mis-verify the
/// signature of an encoded `prefix=` query).
async fn media_objects(
    store: &dyn object_store::ObjectStore,
) -> Result<Vec<object_store::ObjectMeta>> {
    use futures::TryStreamExt;
    let objects: Vec<_> = store
        .list(None)
        .try_collect()
        .await
        .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
    Ok(objects
        .into_iter()
        .filter(|o| o.location.as_ref().starts_with(MEDIA_PREFIX))
        .collect())
}

/// Copies every object under [`MEDIA_PREFIX`] of `store` into `dir`.
pub async fn download(store: &dyn object_store::ObjectStore, dir: &std::path::Path) -> Result<u64> {
    let objects = media_objects(store).await?;
    let mut count = 0;
    for object in objects {
        let key = object.location.as_ref();
        let Some(rel) = key.strip_prefix(MEDIA_PREFIX) else {
            continue;
        };
        if rel.is_empty()
            || rel
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
        {
            continue;
        }
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| ServiceError::io("create", parent, e))?;
        }
        // An app's object may be larger than the platform's memory: it is
        // streamed to disk, never held whole.
        let mut stream = store
            .get(&object.location)
            .await
            .map_err(|e| ServiceError::Unavailable(e.to_string()))?
            .into_stream();
        let mut file =
            std::fs::File::create(&path).map_err(|e| ServiceError::io("write", &path, e))?;
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            let chunk = chunk.map_err(|e| ServiceError::Unavailable(e.to_string()))?;
            std::io::Write::write_all(&mut file, &chunk)
                .map_err(|e| ServiceError::io("write", &path, e))?;
        }
        count += 1;
    }
    Ok(count)
}

/// Makes the objects under [`MEDIA_PREFIX`] exactly the files under `dir`.
pub async fn upload(store: &dyn object_store::ObjectStore, dir: &std::path::Path) -> Result<()> {
    let existing = media_objects(store).await?;
    let files = crate::media::fingerprint(dir)?;
    for file in &files {
        let path = dir.join(&file.path);
        let bytes = std::fs::read(&path).map_err(|e| ServiceError::io("read", &path, e))?;
        let key = object_store::path::Path::from(format!("{MEDIA_PREFIX}{}", file.path));
        store
            .put(&key, bytes.into())
            .await
            .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
    }
    for object in existing {
        let rel = object
            .location
            .as_ref()
            .strip_prefix(MEDIA_PREFIX)
            .unwrap_or_default();
        if !files.iter().any(|f| f.path == rel) {
            store
                .delete(&object.location)
                .await
                .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        }
    }
    Ok(())
}

/// Whether `store` holds any media object.
pub async fn has_media(store: &dyn object_store::ObjectStore) -> Result<bool> {
    Ok(!media_objects(store).await?.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inputs of the AWS Signature Version 4 documentation's "GET
    /// object" example, signed with only the headers this client sends; the
    /// expected value was computed with Python's hmac and hashlib. The
    /// integration tests sign against a server that checks signatures.
    #[test]
    fn signatures_follow_sigv4() {
        let auth = authorization(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "us-east-1",
            "s3",
            "GET",
            "examplebucket.s3.amazonaws.com",
            "/test.txt",
            "",
            "20130524T000000Z",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        );
        assert!(auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
        ));
        assert!(auth.ends_with(
            "Signature=df548e2ce037944d03f3e68682813b093763996d597cf890ca3d9037fd231eb4"
        ));
    }

    #[test]
    fn encoding_and_names() {
        assert_eq!(uri_encode("a b/c~", true), "a%20b/c~");
        assert_eq!(uri_encode("a b/c", false), "a%20b%2Fc");
        assert!(valid_bucket("rampart-abc-blog"));
        for bad in ["", "ab", "Blog", "-a-b", "a_b", &"a".repeat(64)] {
            assert!(!valid_bucket(bad), "{bad:?}");
        }
        assert_eq!(
            xml_value("<R><AccessKeyId>AK</AccessKeyId></R>", "AccessKeyId"),
            Some("AK")
        );
    }
}
