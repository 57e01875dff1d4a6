"""Verifies webhook deliveries with the Standard Webhooks reference library (PyPI `standardwebhooks`).

Usage: verify.py SECRET < deliveries.jsonl, one {"headers": {...}, "body": "..."} per line, the body exactly as
received. Prints each verified payload's type, one per line; exits non-zero at the first that fails.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook


def main() -> int:
    webhook = Webhook(sys.argv[1])
    for line in sys.stdin:
        delivery = json.loads(line)
        try:
            payload = webhook.verify(delivery["body"], delivery["headers"])
        except Exception as err:  # the library raises its own WebhookVerificationError
            print(f"rejected: {err}", file=sys.stderr)
            return 1
        print(payload["type"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
