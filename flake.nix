# The dev shell for working on this template: `nix develop` anywhere in the repository (a stock Nix needs
# `nix --extra-experimental-features 'nix-command flakes' develop`, see README.md).
# It gives Nix's Python, git and nixfmt, then scripts/_bootstrap puts the template's pinned tools (copier, pytest,
# uv) in .venv and on PATH, the same ones scripts/test uses; on Linux also Chromium for the forks' browser tests.
{
  description = "A Copier template for local-first apps: darwinix, pipulate and botifython forks";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.11";

  outputs = { self, nixpkgs }:
    let
      # nixpkgs 26.11 has no x86_64-darwin (Intel Macs).
      systems = [ "x86_64-linux" "aarch64-linux" "aarch64-darwin" ];

      shellFor = pkgs:
        let
          inherit (pkgs) lib stdenv;
          isLinux = stdenv.hostPlatform.isLinux;
          python = pkgs.python312;
        in
        pkgs.mkShell {
          packages = [ python pkgs.git pkgs.nixfmt ] ++ lib.optionals isLinux [ pkgs.chromium ];
          # The forks that scripts/test renders build their .venv from this Python too (./run reads PYTHON).
          PYTHON = "${python}/bin/python3";
          shellHook = ''
            # mkShell dates files 1980 for reproducible builds; building a wheel from an sdist rejects that.
            unset SOURCE_DATE_EPOCH
            ${lib.optionalString isLinux ''
              # The forks' wheels (numpy, ...) expect the C and C++ runtimes a usual Linux has in /usr/lib.
              export LD_LIBRARY_PATH=${lib.makeLibraryPath [ stdenv.cc.cc.lib pkgs.zlib ]}''${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
              export CHROMIUM=${pkgs.chromium}/bin/chromium
            ''}
            if template=$(git rev-parse --show-toplevel 2>/dev/null) && [ -f "$template/scripts/_bootstrap" ]; then
              source "$template/scripts/_bootstrap"
            else
              echo "This shell started outside the template's repository, so scripts/_bootstrap did not run: start it from the repository." >&2
            fi
          '';
        };
    in
    {
      devShells = nixpkgs.lib.genAttrs systems (system: { default = shellFor nixpkgs.legacyPackages.${system}; });
    };
}
