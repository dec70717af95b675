# One image for every regfed service in compose.yaml: the certs job and each state's node.
# Build: docker compose build (or docker build -t regfed .)
FROM python:3.12-slim

# Only what the distribution installs (pyproject.toml's package-dir): a change to tests or docs
# does not rebuild the layer with the dependencies.
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src src
COPY node node
COPY gateway gateway
COPY certs certs
COPY reconciliation reconciliation
RUN pip install --no-cache-dir . && rm -rf /build

# A fixed, unprivileged user: keys are written 0600 by the certs job and read by the nodes, so
# both must run as the same uid. The certs folder (and the oversight node's run folder) exist in
# the image, owned by that user, so a fresh named volume mounted there starts with the right owner.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/regfed regfed \
    && mkdir -p /var/lib/regfed/certs /var/lib/regfed/authority /var/lib/regfed/oversight \
    && chown -R regfed:regfed /var/lib/regfed
USER regfed
WORKDIR /var/lib/regfed

ENTRYPOINT ["regfed"]
CMD ["node", "run"]
