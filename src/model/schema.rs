//! OpenAPI schemas of what has no Rust type of its own here: the auth object is free-form
//! JSON until `crate::auth` parses it, so its schema is written with utoipa's builders.

use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};

/// The `type`s of the auth object (CONTRACT §2; `crate::auth::AuthConfig::type_name`).
const AUTH_TYPES: [&str; 11] = [
    "none",
    "bearer",
    "api_key",
    "x_api_key",
    "basic",
    "digest",
    "jwt",
    "hmac",
    "oauth2",
    "aws_sigv4",
    "client_certificate",
];

/// The schema `Auth`: an object with a `type` and that scheme's fields.
pub struct AuthSchema;

impl utoipa::PartialSchema for AuthSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Partner auth scheme (docs/auth.md lists each scheme's fields). Responses show only `type` and non-secret fields.",
            ))
            .property(
                "type",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(AUTH_TYPES)),
            )
            .required("type")
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .into()
    }
}

impl utoipa::ToSchema for AuthSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "Auth".into()
    }
}
