# Strata's service in a container: Debian-based Node 20, FUSE, the native build.
# It mirrors scripts/setup.sh. Run it with the FUSE device and the right to mount:
#   docker run -d --name strata --device /dev/fuse --cap-add SYS_ADMIN --security-opt apparmor:unconfined \
#     -v /srv/share:/srv/share:ro -v /srv/backup:/repo -v /srv/strata-mnt:/mnt/strata:rshared \
#     -v /etc/strata:/etc/strata:ro strata
# with /etc/strata/strata.json naming /srv/share, /repo and "mount": "/mnt/strata".
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential python3 pkg-config fuse3 libfuse3-dev liblz4-dev libzstd-dev acl attr \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/strata
COPY package.json package-lock.json tsconfig.json ./
COPY native ./native
COPY scripts ./scripts
COPY bin ./bin
COPY src ./src
RUN npm ci --no-audit --no-fund || npm install --no-audit --no-fund
ENV STRATA_CACHE_DIR=/var/cache/strata
VOLUME ["/var/cache/strata"]
ENTRYPOINT ["/opt/strata/bin/strata.js"]
CMD ["serve", "--config", "/etc/strata/strata.json"]
