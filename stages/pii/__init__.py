"""PII anonymisation: the `pii` stage finds e-mail addresses, public IP addresses and, behind
switches, phone numbers, IBANs and payment-card numbers, and replaces them with a placeholder
(or, in ``mode: annotate``, only records where they are). See docs/pii.md."""
