"""Support's back-office (outer ring): the admin dashboard, status summaries, the Suporte group."""
