"""The browser pages of Keyhall: sign-in, device verification, consent and the portal landing page.

``keyhall.web.pages.routes`` is mounted by the app; templates and the stylesheet ship as package data.
"""
