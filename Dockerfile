# Strata in a container: Debian-based Node 20 with FUSE and the native addon built.
# Mounting needs the FUSE device and the capability to mount:
#   docker run --device /dev/fuse --cap-add SYS_ADMIN -v /srv/share:/srv/share:ro -v /srv/backup:/repo \
#     -e STRATA_REPOSITORY=/repo -e STRATA_PASSWORD_FILE=/run/secrets/strata strata backup /srv/share
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential python3 pkg-config fuse libfuse2 acl attr \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/strata
COPY package.json package-lock.json ./
COPY native ./native
COPY bin ./bin
RUN npm ci --no-audit --no-fund --omit=dev=false
COPY src ./src
COPY tsconfig.json ./
ENV STRATA_CACHE_DIR=/var/cache/strata
VOLUME ["/var/cache/strata"]
ENTRYPOINT ["node", "/opt/strata/bin/strata.js"]
CMD ["--help"]
