//! Graph's subscription validation handshake.
//!
//! Before Graph creates (and possibly renews) a subscription it calls the notification URL and
//! the lifecycle URL with a `validationToken` query parameter. The endpoint must answer 200,
//! `text/plain`, with the token decoded, within 10 seconds. Graph encodes the token with form
//! rules (`+` for a space, `%3a` for `:`), so decoding must follow form rules too: a decoder that
//! keeps the `+` fails the handshake.

/// The decoded validation token if the raw query string (as received, still percent-encoded)
/// carries one. The first `validationToken` wins when several are present.
pub fn validation_token(raw_query: Option<&str>) -> Option<String> {
    let query = raw_query?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "validationToken")
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_token_is_decoded_with_form_rules() {
        let raw = "validationToken=Validation%3a+Testing+client+application+reachability+for+\
                   subscription+Request-Id%3a+0c6a2f51-7d1e-4b3a-9f0e-2b8c4d6e8a10";

        assert_eq!(
            validation_token(Some(raw)).unwrap(),
            "Validation: Testing client application reachability for subscription \
             Request-Id: 0c6a2f51-7d1e-4b3a-9f0e-2b8c4d6e8a10"
        );
    }

    #[test]
    fn upper_case_escapes_decode_the_same() {
        let raw = "validationToken=Validation%3A+Testing+client+application+reachability+for+\
                   subscription+Request-Id%3A+0c6a2f51-7d1e-4b3a-9f0e-2b8c4d6e8a10";

        assert_eq!(
            validation_token(Some(raw)).unwrap(),
            "Validation: Testing client application reachability for subscription \
             Request-Id: 0c6a2f51-7d1e-4b3a-9f0e-2b8c4d6e8a10"
        );
    }

    #[test]
    fn encoded_plus_stays_a_plus_and_plain_plus_is_a_space() {
        assert_eq!(
            validation_token(Some("validationToken=a%2Bb+c%3Ad")).unwrap(),
            "a+b c:d"
        );
    }

    #[test]
    fn other_parameters_are_ignored() {
        assert_eq!(
            validation_token(Some("mbx=fax1&validationToken=x%20y")).unwrap(),
            "x y"
        );
        assert_eq!(validation_token(Some("mbx=fax1")), None);
        assert_eq!(validation_token(None), None);
    }
}
