"""The tenant's server-rendered pages (outer ring): home and Configurações › Conexão WhatsApp."""
