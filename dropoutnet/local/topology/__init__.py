"""``docker-compose.yml``'s topology as local processes (``make prod-check``): each service
started with the command and environment the compose file gives it, read through Docker
Compose itself, its containers mapped onto one machine (:mod:`.containers`), supervised with
the file's restart policies and health checks (:mod:`.supervisor`)."""
