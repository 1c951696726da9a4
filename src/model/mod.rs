//! Domain types and the validation of what enters callbackd. No I/O here.

pub mod catalog;
mod delivery;
mod endpoint;
mod event;
pub mod hints;
mod notification;
mod schema;
mod status;
mod text;
mod trace;

pub use delivery::{DeliveryState, ErrorKind, Trigger};
pub use endpoint::{DeliveryOrder, Environment, Method, Signing, validate_url_shape};
pub use event::EventType;
pub use notification::NewNotification;
pub use schema::AuthSchema;
pub use status::ProposalStatus;
pub use text::{text_from_bytes, text_from_str};
pub use trace::TraceParent;

/// Input that breaks a rule, with the field it concerns (a JSON path such as `auth.token`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Implements `as_str`, `Display`, `FromStr`, serde and the OpenAPI schema for a fieldless enum whose wire
/// names are fixed strings, so each enum states its names once.
macro_rules! wire_enum {
    ($ty:ident, $what:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    other => Err(format!(
                        concat!("unknown ", $what, " `{}`, expected one of: {}"),
                        other,
                        [$($name),+].join(", ")
                    )),
                }
            }
        }

        impl TryFrom<String> for $ty {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                s.parse()
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        /// A string with the wire names as its `enum`, named after the type.
        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($name),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $ty {}

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use wire_enum;
