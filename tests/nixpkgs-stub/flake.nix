# A stand-in for nixpkgs for tests/test_flakes.py: exactly the attributes the template's flakes use, so evaluating
# a flake against it proves every package and attribute name exists, offline and in a second. The packages are
# derivations that are never built; a misspelled name is a missing attribute and fails evaluation.
# When a flake starts using a new nixpkgs attribute, add it here (with the name nixpkgs gives it).
{
  outputs = { self }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];

      lib = {
        genAttrs = names: f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) names);
        optionals = condition: list: if condition then list else [ ];
        optionalString = condition: string: if condition then string else "";
        makeLibraryPath = packages: builtins.concatStringsSep ":" (map (package: "${package}/lib") packages);
        isDerivation = value: value.type or null == "derivation";
      };

      packagesFor = system:
        let
          package = name: builtins.derivation { inherit name system; builder = "/bin/sh"; };
          hostPlatform.isLinux = builtins.elem system [ "x86_64-linux" "aarch64-linux" ];
        in
        {
          inherit lib;
          stdenv = { inherit hostPlatform; cc.cc.lib = package "gcc-lib"; };
          # Like nixpkgs' mkShell: `packages` must be derivations, other attributes become environment variables.
          mkShell = { packages ? [ ], ... }@attrs:
            assert builtins.all lib.isDerivation packages;
            builtins.derivation (removeAttrs attrs [ "packages" ] // {
              name = "nix-shell";
              inherit system packages;
              builder = "/bin/sh";
            });
          python311 = package "python3-3.11";
          python312 = package "python3-3.12";
          python313 = package "python3-3.13";
          uv = package "uv";
          git = package "git";
          zlib = package "zlib";
          nixfmt = package "nixfmt";
          chromium = package "chromium";
        };
    in
    {
      inherit lib;
      legacyPackages = lib.genAttrs systems packagesFor;
    };
}
