//! A notification as the platform hands it in.

use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::{Environment, EventType, ProposalStatus, ValidationError, catalog};

const MAX_IDENTIFIER_LEN: usize = 200;

/// proposal.status needs proposal and status (body optional); every other event type needs
/// a body and takes no proposal, status or identifier.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNotification {
    pub partner_id: Uuid,
    pub environment: Environment,
    pub event_type: EventType,
    #[serde(default)]
    pub proposal: Option<Uuid>,
    #[serde(default)]
    #[schema(value_type = Option<u8>, minimum = 0, maximum = 11)]
    pub status: Option<ProposalStatus>,
    #[serde(default)]
    #[schema(max_length = 200)]
    pub identifier: Option<String>,
    /// A JSON object. Kept as the exact text received, so the partner gets the keys in the
    /// same order.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub body: Option<Box<RawValue>>,
    /// The request's W3C `traceparent`, when it carried a valid one: stored with the
    /// notification so its attempts can link to the platform's trace. Not part of the body,
    /// nor of the Idempotency-Key fingerprint (a retry is the same request whatever its trace).
    #[serde(skip)]
    #[schema(ignore)]
    pub traceparent: Option<String>,
}

impl NewNotification {
    /// The rules of CONTRACT §2 and §6 that serde's types do not already enforce.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(body) = &self.body
            && !body.get().trim_start().starts_with('{')
        {
            return Err(ValidationError::new("body", "must be a JSON object"));
        }
        match self.event_type {
            EventType::ProposalStatus => {
                if self.proposal.is_none() {
                    return Err(ValidationError::new(
                        "proposal",
                        "required for proposal.status: the proposal's GUID",
                    ));
                }
                if self.status.is_none() {
                    return Err(ValidationError::new(
                        "status",
                        "required for proposal.status: a status id from 0 to 11",
                    ));
                }
                if let Some(identifier) = &self.identifier
                    && identifier.chars().count() > MAX_IDENTIFIER_LEN
                {
                    return Err(ValidationError::new(
                        "identifier",
                        "longer than 200 characters",
                    ));
                }
            }
            other => {
                if self.body.is_none() {
                    return Err(ValidationError::new(
                        "body",
                        format!("required for {other}"),
                    ));
                }
                for (field, present) in [
                    ("proposal", self.proposal.is_some()),
                    ("status", self.status.is_some()),
                    ("identifier", self.identifier.is_some()),
                ] {
                    if present {
                        return Err(ValidationError::new(
                            field,
                            "belongs to proposal.status only",
                        ));
                    }
                }
            }
        }
        if let Some(body) = &self.body {
            let value: serde_json::Value = serde_json::from_str(body.get())
                .map_err(|e| ValidationError::new("body", e.to_string()))?;
            catalog::validate_body(self.event_type, Some(&value))?;
        }
        Ok(())
    }

    /// The request as a canonical text, for comparing two requests that carry the same
    /// Idempotency-Key: every field, and the body byte for byte (key order is part of what
    /// the partner receives).
    pub fn fingerprint(&self) -> String {
        serde_json::json!({
            "partner_id": self.partner_id,
            "environment": self.environment,
            "event_type": self.event_type,
            "proposal": self.proposal,
            "status": self.status,
            "identifier": self.identifier,
            "body": self.body.as_ref().map(|b| b.get()),
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<NewNotification, String> {
        serde_json::from_str::<NewNotification>(json).map_err(|e| e.to_string())
    }

    const PARTNER: &str = "0190f5e2-6a52-7c3e-9f51-5a7e2c7b8f00";

    #[test]
    fn a_status_change_with_ordered_body() {
        let n = parse(&format!(
            r#"{{"partner_id":"{PARTNER}","environment":"production","event_type":"proposal.status",
                "proposal":"7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d","status":9,
                "body":{{"z":1,"a":"Credit or debit executed"}}}}"#
        ))
        .unwrap();
        n.validate().unwrap();
        assert_eq!(n.status.unwrap().name(), "Paid");
        assert_eq!(
            n.body.unwrap().get(),
            r#"{"z":1,"a":"Credit or debit executed"}"#
        );
    }

    #[test]
    fn refusals_name_the_field() {
        let base = format!(
            r#""partner_id":"{PARTNER}","environment":"production","event_type":"proposal.status""#
        );
        let status_missing = parse(&format!(
            r#"{{{base},"proposal":"7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d"}}"#
        ))
        .unwrap();
        assert_eq!(status_missing.validate().unwrap_err().field, "status");
        assert!(parse(&format!(r#"{{{base},"proposal":"not-a-guid","status":1}}"#)).is_err());
        assert!(
            parse(&format!(
                r#"{{{base},"proposal":"7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d","status":12}}"#
            ))
            .is_err()
        );
        let array_body = parse(&format!(
            r#"{{{base},"proposal":"7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d","status":1,"body":[1]}}"#
        ))
        .unwrap();
        assert_eq!(array_body.validate().unwrap_err().field, "body");
    }
}
