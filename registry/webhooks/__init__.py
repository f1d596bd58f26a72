"""Webhooks: who is told of each change (subscriptions), the URL guard, and the deliverer.

Events are written by the layers below through `registry.db.outbox`, in the transaction of
the change; this layer sends them. It uses governance (admin checks), core and db only.
"""
