//! The other S3 XML documents the server writes: bucket listings, the error document and the
//! bucket location.

use chrono::SecondsFormat;
use quick_xml::escape::escape;

use crate::{BucketRecord, S3_XML_NAMESPACE};

const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// `ListAllMyBucketsResult`, buckets in name order.
pub fn list_buckets(owner_id: &str, owner_name: &str, buckets: &[BucketRecord]) -> String {
    let mut xml = format!(
        "{DECLARATION}<ListAllMyBucketsResult xmlns=\"{S3_XML_NAMESPACE}\"><Owner><ID>{}</ID><DisplayName>{}</DisplayName></Owner><Buckets>",
        escape(owner_id),
        escape(owner_name)
    );
    for bucket in buckets {
        xml.push_str(&format!(
            "<Bucket><Name>{}</Name><CreationDate>{}</CreationDate></Bucket>",
            escape(bucket.name.as_str()),
            bucket
                .creation_date
                .to_rfc3339_opts(SecondsFormat::Millis, true)
        ));
    }
    xml.push_str("</Buckets></ListAllMyBucketsResult>");
    xml
}

/// The S3 error document.
pub fn error(code: &str, message: &str, resource: &str, request_id: &str) -> String {
    format!(
        "{DECLARATION}<Error><Code>{}</Code><Message>{}</Message><Resource>{}</Resource><RequestId>{}</RequestId></Error>",
        escape(code),
        escape(message),
        escape(resource),
        escape(request_id)
    )
}

/// `LocationConstraint`; S3 answers an empty one for `us-east-1`.
pub fn location(region: &str) -> String {
    let region = if region == "us-east-1" { "" } else { region };
    format!(
        "{DECLARATION}<LocationConstraint xmlns=\"{S3_XML_NAMESPACE}\">{}</LocationConstraint>",
        escape(region)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BucketName;

    #[test]
    fn listings_escape_and_format_dates_like_s3() {
        let record = BucketRecord {
            name: BucketName::parse("photos").unwrap(),
            creation_date: chrono::DateTime::from_timestamp(1_726_741_800, 0).unwrap(),
            encryption: None,
        };
        let xml = list_buckets("id", "a<b", &[record]);
        assert!(xml
            .contains("<Name>photos</Name><CreationDate>2024-09-19T10:30:00.000Z</CreationDate>"));
        assert!(xml.contains("a&lt;b"));
        assert!(error("NoSuchBucket", "m&m", "/b", "r1").contains("<Message>m&amp;m</Message>"));
    }
}
