//! Recipients: a gateway e-mail is addressed to the number itself, as the local part of the
//! recipient address (`+61299998888@fax.example.com`, or a national number such as
//! `0299998888@fax.example.com` read in the mailbox's default region). Numbers are normalised to
//! E.164 with libphonenumber's metadata (the `phonenumber` crate).

use phonenumber::{Mode, country};

/// A phone number in E.164 form, e.g. `+61299998888`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct E164(String);

impl E164 {
    /// The number, e.g. `+61299998888`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number for logs: the first three and the last three characters only, e.g.
    /// `+61******888`.
    pub fn masked(&self) -> String {
        mask_number(&self.0)
    }
}

/// Masks all but the first three and last three characters of a number.
pub fn mask_number(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let (head, rest) = chars.split_at(3);
    let (middle, tail) = rest.split_at(rest.len() - 3);
    format!(
        "{}{}{}",
        head.iter().collect::<String>(),
        "*".repeat(middle.len()),
        tail.iter().collect::<String>()
    )
}

/// Reads the number from a recipient address's local part. `None` when the local part is not a
/// valid phone number for the region (a person's name, a short code, a typo).
pub fn number_from_address(address: &str, default_region: country::Id) -> Option<E164> {
    let (local, _domain) = address.rsplit_once('@')?;
    let digits_only = local
        .chars()
        .enumerate()
        .all(|(i, c)| c.is_ascii_digit() || (i == 0 && c == '+') || c == '-' || c == '.');
    if !digits_only || !local.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }

    let number = phonenumber::parse(Some(default_region), local).ok()?;
    if !phonenumber::is_valid(&number) {
        return None;
    }
    Some(E164(number.format().mode(Mode::E164).to_string()))
}

/// The numbers among a message's recipient addresses, in order, without repeats, and how many
/// addresses were not numbers.
pub fn numbers_from_addresses<'a>(
    addresses: impl IntoIterator<Item = &'a str>,
    default_region: country::Id,
) -> (Vec<E164>, usize) {
    let mut numbers: Vec<E164> = Vec::new();
    let mut not_numbers = 0;
    for address in addresses {
        match number_from_address(address, default_region) {
            Some(number) if !numbers.contains(&number) => numbers.push(number),
            Some(_) => {}
            None => not_numbers += 1,
        }
    }
    (numbers, not_numbers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn international_local_part_is_kept_in_e164() {
        let number = number_from_address("+61299998888@fax.example.com", country::Id::AU);

        assert_eq!(number.unwrap().as_str(), "+61299998888");
    }

    #[test]
    fn national_number_takes_the_mailbox_region() {
        let number = number_from_address("0299998888@fax.example.com", country::Id::AU);

        assert_eq!(number.unwrap().as_str(), "+61299998888");
    }

    #[test]
    fn australian_mobile_in_national_form() {
        let number = number_from_address("0412345678@sms.example.com", country::Id::AU);

        assert_eq!(number.unwrap().as_str(), "+61412345678");
    }

    #[test]
    fn names_and_invalid_numbers_are_not_recipients() {
        assert_eq!(
            number_from_address("alice@contoso.example", country::Id::AU),
            None
        );
        assert_eq!(
            number_from_address("12@fax.example.com", country::Id::AU),
            None
        );
        assert_eq!(number_from_address("no-at-sign", country::Id::AU), None);
        assert_eq!(
            number_from_address("+61-abc@fax.example.com", country::Id::AU),
            None
        );
    }

    #[test]
    fn repeats_collapse_and_non_numbers_are_counted() {
        let (numbers, not_numbers) = numbers_from_addresses(
            [
                "+61299998888@fax.example.com",
                "0299998888@fax.example.com",
                "bob@contoso.example",
            ],
            country::Id::AU,
        );

        assert_eq!(
            numbers.iter().map(E164::as_str).collect::<Vec<_>>(),
            ["+61299998888"]
        );
        assert_eq!(not_numbers, 1);
    }

    #[test]
    fn masked_number_keeps_only_the_ends() {
        assert_eq!(mask_number("+61299998888"), "+61******888");
        assert_eq!(mask_number("12345"), "*****");
    }
}
