"""torch.hub entry points, like the original project's: torch.hub.load(repo, 's2vs_dns')."""
dependencies = ["torch", "torchvision", "av", "numpy"]


def s2vs_dns(weights: str = "s2vs_dns", device: str = "cpu"):
    """ViSiL similarity network trained with S2VS on DnS-100K (published weights, or a checkpoint path)."""
    from s2vs_cli.models.loading import load_similarity_network

    return load_similarity_network(weights, device=device)


def s2vs_vcdb(weights: str = "s2vs_vcdb", device: str = "cpu"):
    """ViSiL similarity network trained with S2VS on VCDB."""
    from s2vs_cli.models.loading import load_similarity_network

    return load_similarity_network(weights, device=device)


def resnet50_LiMAC(backbone_weights: str = "imagenet", pca: str = "vcdb", device: str = "cpu"):
    """ResNet-50 L3-iMAC region extractor with PCA whitening (frames [T, H, W, 3] -> [T, 9, 512])."""
    from s2vs_cli.models.loading import load_extractor

    return load_extractor(backbone_weights, pca, device=device)
