//! One line per `error_kind` (see [`super::ErrorKind`]) telling a partner what to check when
//! a callback to its endpoint failed, in English and Brazilian Portuguese. The test-callback
//! answer, the console and both partner guides (docs/partners.md, docs/parceiros.md) show
//! these lines; this table is the one place they are written.

use serde::Serialize;

use super::ErrorKind;

/// The languages a hint is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Pt,
}

/// `(error_kind, English, Portuguese)`, one row per [`ErrorKind`].
const HINTS: &[(ErrorKind, &str, &str)] = &[
    (
        ErrorKind::Timeout,
        "your endpoint did not answer within the endpoint's timeout_ms; answer 2xx first and do the work afterwards",
        "seu endpoint não respondeu dentro do timeout_ms do endpoint; responda 2xx primeiro e processe depois",
    ),
    (
        ErrorKind::Dns,
        "the host name of the URL does not resolve; check the spelling and the public DNS record",
        "o nome do host da URL não resolve; confira a grafia e o registro DNS público",
    ),
    (
        ErrorKind::Connect,
        "nothing accepted the connection on that host and port; check that the server is up and the firewall lets us in",
        "nada aceitou a conexão nesse host e porta; confira se o servidor está no ar e se o firewall nos libera",
    ),
    (
        ErrorKind::Tls,
        "the certificate chain does not verify; include intermediates",
        "a cadeia de certificados não é válida; inclua os intermediários",
    ),
    (
        ErrorKind::Redirect,
        "your endpoint answered a redirect (3xx), which is not followed; register the final URL",
        "seu endpoint respondeu um redirecionamento (3xx), que não é seguido; cadastre a URL final",
    ),
    (
        ErrorKind::Http4xx,
        "your endpoint refused the request (4xx); check the path, the method and what your validation rejects",
        "seu endpoint recusou a requisição (4xx); confira o caminho, o método e o que sua validação rejeita",
    ),
    (
        ErrorKind::Http5xx,
        "your endpoint failed (5xx); look at your server's logs for this X-Callback-Id",
        "seu endpoint falhou (5xx); veja os logs do seu servidor para este X-Callback-Id",
    ),
    (
        ErrorKind::AuthRejected,
        "your endpoint rejected our credentials (401/403); check the auth configured on the endpoint",
        "seu endpoint rejeitou nossas credenciais (401/403); confira a autenticação cadastrada no endpoint",
    ),
    (
        ErrorKind::BodyTooLarge,
        "your endpoint answered 413: raise its request size limit",
        "seu endpoint respondeu 413: aumente o limite de tamanho da requisição",
    ),
    (
        ErrorKind::ForbiddenTarget,
        "the URL resolves to a private or loopback address; use a public address",
        "a URL resolve para um endereço privado ou de loopback; use um endereço público",
    ),
    (
        ErrorKind::Auth,
        "we could not obtain credentials for your endpoint (token URL, key or certificate); check the endpoint's auth",
        "não conseguimos obter credenciais para o seu endpoint (URL de token, chave ou certificado); confira a autenticação do endpoint",
    ),
    (
        ErrorKind::Internal,
        "callbackd failed before reaching you; try again, and tell us the X-Callback-Id if it persists",
        "o callbackd falhou antes de chegar até você; tente de novo e informe o X-Callback-Id se persistir",
    ),
    (
        ErrorKind::Other,
        "the exchange failed in an unexpected way (e.g. the connection was dropped mid-answer); see the error text",
        "a troca falhou de forma inesperada (ex.: a conexão caiu no meio da resposta); veja o texto do erro",
    ),
];

/// Every `error_kind` that has a hint, in the order of the guides' tables.
pub fn kinds() -> impl Iterator<Item = &'static str> {
    HINTS.iter().map(|(k, _, _)| k.as_str())
}

/// What to check after a failure of `kind`, or `None` for a kind this table does not know.
pub fn hint(kind: &str, lang: Lang) -> Option<&'static str> {
    HINTS
        .iter()
        .find(|(k, _, _)| k.as_str() == kind)
        .map(|(_, en, pt)| match lang {
            Lang::En => *en,
            Lang::Pt => *pt,
        })
}

/// A hint in both languages, as the API answers it: `{"en": "...", "pt": "..."}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Hint {
    pub en: &'static str,
    pub pt: &'static str,
}

/// Both lines for `kind` (every kind has them: see the test below).
pub fn hints(kind: ErrorKind) -> Option<Hint> {
    HINTS
        .iter()
        .find(|(k, _, _)| *k == kind)
        .map(|(_, en, pt)| Hint { en, pt })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind has a hint in both languages, and the table has no row for anything else.
    #[test]
    fn every_error_kind_has_both_lines() {
        assert_eq!(HINTS.len(), ErrorKind::ALL.len());
        for kind in ErrorKind::ALL {
            let h = hints(*kind).unwrap_or_else(|| panic!("{kind}: no hint"));
            assert!(
                !h.en.is_empty() && !h.pt.is_empty() && h.en != h.pt,
                "{kind}"
            );
            assert!(
                !h.en.contains('\n') && !h.pt.contains('\n'),
                "{kind}: one line"
            );
            assert_eq!(hint(kind.as_str(), Lang::En), Some(h.en));
            assert_eq!(hint(kind.as_str(), Lang::Pt), Some(h.pt));
        }
        assert_eq!(hint("nope", Lang::En), None);
    }
}
