"""The billing system's codes in English, for the 360 page when the user reads English. The Chinese
labels come with the codes from the billing connector (connectors/billing/codes.py); an unknown code
keeps the connector's label."""

from __future__ import annotations

from .views_helpers import locale

ENGLISH: dict[str, dict[str, str]] = {
    "level": {"standard": "Standard customer", "large": "Key account", "vip": "VIP customer"},
    "customer_type": {"person": "Individual", "company": "Business"},
    "id_type": {"id_card": "Resident ID card", "passport": "Passport", "business_license": "Business licence",
                "officer_card": "Military officer's card"},
    "language": {"zh": "Mandarin", "en": "English", "yue": "Cantonese"},
    "service_type": {"gsm": "GSM mobile", "ip": "IP phone", "fixed": "Fixed line", "ld193": "193 long distance"},
    "subscription_status": {"active": "Active", "one_way_suspended": "Suspended one way",
                            "two_way_suspended": "Suspended both ways", "closed": "Closed"},
    "status_reason": {"arrears": "Suspended for arrears", "customer_request": "Suspended at the customer's request",
                      "lost": "Suspended after a loss report", "operator": "Suspended by the operator",
                      "closed_by_customer": "Closed by the customer"},
    "feature": {"intl_long_distance": "International long distance", "intl_roaming": "International roaming",
                "national_roaming": "National roaming", "provincial_roaming": "Provincial roaming",
                "caller_id": "Caller ID", "call_forwarding": "Call forwarding", "call_barring": "Call barring",
                "sms": "SMS", "call_waiting": "Call waiting", "three_way_calling": "Three-way calling"},
    "bill_item": {"monthly_fee": "Monthly fee", "local_call": "Local calls", "long_distance": "Long distance",
                  "roaming": "Roaming", "sms": "SMS", "data": "Data", "value_added": "Value-added services",
                  "discount": "Discounts"},
    "bill_status": {"unpaid": "Unpaid", "partly_paid": "Partly paid", "paid": "Paid"},
    "payment_channel": {"counter": "Shop counter", "bank": "Bank collection", "online": "Online payment",
                        "card": "Top-up card", "auto_debit": "Direct debit"},
    "record_type": {"voice_out": "Outgoing call", "voice_in": "Incoming call", "sms_out": "SMS sent",
                    "sms_in": "SMS received", "data": "Data", "forward": "Forwarded call"},
    "roaming": {"none": "Not roaming", "provincial": "Provincial roaming", "national": "National roaming",
                "international": "International roaming"},
    "long_distance": {"none": "Local", "domestic": "Domestic long distance",
                      "international": "International long distance", "ip": "IP long distance"},
    "blacklist_reason": {"malicious_arrears": "Deliberate arrears", "fraud": "Fraud", "harassment": "Harassment",
                         "fake_documents": "Forged documents"},
    "order_status": {"NEW": "Waiting", "PROCESSING": "Being processed", "DONE": "Done", "REJECTED": "Rejected"},
    "request_type": {"feature_on": "Switch a feature on", "feature_off": "Switch a feature off",
                     "suspend": "Suspend service", "resume": "Resume service",
                     "report_loss": "Report loss (emergency suspension)", "change_password": "Change the service password",
                     "change_bill_address": "Change the bill address", "set_family_numbers": "Set family numbers"},
}


def billing_word(kind: str, code: str | None, label: str | None) -> str:
    """``label`` (the connector's Chinese) in Chinese; the English of ``code`` in English."""
    if locale().startswith("en") and code is not None and code in ENGLISH.get(kind, {}):
        return ENGLISH[kind][code]
    return label or ""
