# The NATS node's image, FROM scratch like the others (Dockerfile), run by
# the numeric user 65532. /data is an empty directory owned by that user:
# Docker initialises a new named volume mounted there (JetStream's store,
# docker-compose.yml) with the directory's owner and mode, so the server
# writes to it without root. A volume made by an older image, owned by
# root, is not changed: remove it (docker-compose down -v) or chown it.
FROM scratch
COPY nats-server /app
COPY httpprobe /httpprobe
COPY --chown=65532:65532 data /data
USER 65532:65532
ENTRYPOINT ["/app"]
